"""`workbench annotate serve`: the annotation app served by Voila on this machine.

Safe by default: bound to 127.0.0.1 and protected by a random token (both in the printed URL). Another address
(`--ip 0.0.0.0` for colleagues on the network) keeps the token; `--no-token` is allowed on a loopback address only.
The server runs until Ctrl-C; each browser tab gets its own kernel, so several experts annotate at once (the label
store takes concurrent writers).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.errors import UserError
from workbench.fileio import write_bytes_atomically
from workbench.workspace import Workspace

LOOPBACK = "127.0.0.1"
APP_NOTEBOOK = "annotate.ipynb"


@dataclass(frozen=True)
class AppSettings:
    workspace: str
    clustering: str = ""
    annotator: str = ""  # empty: the app asks for it (once)
    order: str = "largest"
    embeddings: str = ""
    taxonomy: str = ""


@dataclass(frozen=True)
class ServeConfig:
    settings: AppSettings
    ip: str = LOOPBACK
    port: int = 0  # 0: a free port
    token: bool = True


def is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError as error:
        raise UserError(f"--ip {ip!r} is not an IP address") from error


def free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def voila_command(notebook: str, ip: str, port: int, token: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "voila",
        notebook,
        "--no-browser",
        f"--Voila.ip={ip}",
        f"--port={port}",
        f"--token={token}",
        "--Voila.port_retries=0",
        "--show_tracebacks=True",
    ]


def _wait_listening(process: subprocess.Popen, ip: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    host = LOOPBACK if ip in ("0.0.0.0", "::") else ip
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"voila exited ({process.returncode}) before serving the app; see its messages above")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise UserError(f"voila did not listen on {ip}:{port} within {timeout_s:.0f} s")


def app_notebook(folder: Path, settings: AppSettings) -> Path:
    """Write the one-cell notebook Voila serves (settings as literals), atomically; returns its path."""
    source = (
        "from workbench.annotate.app import annotation_app\n\n"
        f"annotation_app({json.dumps(asdict(settings), ensure_ascii=False)})"
    )
    notebook = {
        "cells": [
            {
                "id": "annotation-app",
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": source,
            }
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    folder.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomically(folder / APP_NOTEBOOK, json.dumps(notebook, indent=1).encode())


def start(config: ServeConfig, say: Callable[[str], None] = print, timeout_s: float = 120.0):
    """Start Voila on the app notebook; say the URL; return (process, url). The caller waits and stops it."""
    from workbench.extras import require

    require("voila", "notebook", "workbench annotate serve")
    workspace = Workspace.at(config.settings.workspace)
    if not workspace.root.is_dir():
        raise UserError(f"no workspace at {workspace.root}")
    loopback = is_loopback(config.ip)  # also refuses what is not an address
    if not config.token and not loopback:
        raise UserError(f"--no-token needs a loopback --ip (127.0.0.1): {config.ip} would let anyone on the network in")
    settings = AppSettings(**{**config.settings.__dict__, "workspace": str(workspace.root.resolve())})
    notebook = app_notebook(workspace.tmp / "annotate-app", settings)
    port = config.port or free_port(LOOPBACK if loopback else "")
    token = secrets.token_hex(16) if config.token else ""
    process = subprocess.Popen(voila_command(str(notebook), config.ip, port, token), cwd=notebook.parent)
    _wait_listening(process, config.ip, port, timeout_s)
    shown = LOOPBACK if config.ip in ("0.0.0.0", "::") else config.ip
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    say(f"annotation app: {url}")
    say("open it in a browser; Ctrl-C stops the server")
    return process, url


def serve(config: ServeConfig, say: Callable[[str], None] = print) -> int:
    """Serve until Ctrl-C (or until Voila exits)."""
    process, _ = start(config, say)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0

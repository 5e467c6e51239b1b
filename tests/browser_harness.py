"""Drive JupyterLab in headless Chromium as a person would: a server on 127.0.0.1 with a token in a temporary root,
a notebook opened, *Run > Run All Cells*, wait until the kernel is idle, then click and type into widgets.

Chromium is Debian's (`apt-get install chromium`), launched by Playwright's Python package with `executable_path`;
Playwright's own browser download is never used. `chromium_path()` is None when it is missing (tests skip).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Settings of a fresh user: no news prompt, every cell rendered (no windowing), so tests see what a person sees.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
LAB_FOLDERS = ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
SCREENSHOTS_ENV = "WORKBENCH_BROWSER_SCREENSHOTS"  # a folder: tests save what the browser showed there


def chromium_path() -> str | None:
    """Debian's chromium (or another on PATH / in $CHROMIUM), None when absent."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A JupyterLab server on 127.0.0.1 serving `root`, with its own config, data and runtime folders."""

    root: Path
    state: Path
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, relative: str) -> str:
        return f"{self.url}/lab/tree/{relative}?token={self.token}"

    def start(self, timeout_s: float = 90.0) -> LabServer:
        env = dict(os.environ)
        for name in LAB_FOLDERS:
            folder = self.state / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            env[name] = str(folder)
        for name, values in LAB_SETTINGS.items():
            path = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)  # this tree
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        log = (self.state / "jupyterlab.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.process.returncode}): {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"JupyterLab did not answer within {timeout_s:.0f} s: {self.log_tail()}")

    def log_tail(self, characters: int = 3000) -> str:
        path = self.state / "jupyterlab.log"
        return path.read_text(errors="replace")[-characters:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the notebook page ----------------------------------------------------------------------------------------
_CELLS_DONE = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""
_KERNEL_IDLE = r"""() => {
    const bar = document.querySelector('#jp-main-statusbar');
    return bar !== null && /\| Idle/.test(bar.textContent);
}"""


def open_notebook(page, server: LabServer, relative: str, timeout_s: float = 90.0) -> None:
    """Open a notebook in JupyterLab and wait until its kernel is idle."""
    page.goto(server.notebook_url(relative))
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", state="visible", timeout=timeout_s * 1000)
    page.wait_for_function(_KERNEL_IDLE, timeout=timeout_s * 1000)


def run_all_cells(page, timeout_s: float = 180.0) -> None:
    """Run > Run All Cells, then wait until every code cell has an execution count and the kernel is idle."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").filter(has_not_text="Restart").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].some(p => p.textContent.includes('*'))",
        timeout=30_000,
    )
    wait_until_idle(page, timeout_s)


def wait_until_idle(page, timeout_s: float = 60.0) -> None:
    page.wait_for_function(_CELLS_DONE, timeout=timeout_s * 1000)
    page.wait_for_function(_KERNEL_IDLE, timeout=timeout_s * 1000)


def errors_in_outputs(page) -> list[str]:
    """Texts of error outputs (tracebacks) in the notebook."""
    return page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()


def screenshot(page, name: str) -> Path | None:
    """Save a full-page PNG under $WORKBENCH_BROWSER_SCREENSHOTS (nothing when it is unset)."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if not folder:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path

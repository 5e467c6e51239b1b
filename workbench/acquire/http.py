"""Streaming HTTP GET into a file with failures sorted into transient (retry) and permanent ones."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import requests
import urllib3

from workbench.retry import PermanentError, TransientError, parse_retry_after, retryable_status


def _version() -> str:
    try:
        return metadata.version("biomedica-workbench")
    except metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"biomedica-workbench/{_version()} (research; PMC OA bulk download)"
CHUNK_BYTES = 1 << 20


class NotFoundError(PermanentError):
    """The server has no such file (HTTP 404, or a missing file in a local mirror)."""


@dataclass(frozen=True)
class Fetched:
    """What landed in the destination file."""

    bytes: int
    sha256: str


def new_session(pool_size: int = 4) -> requests.Session:
    """A session with a polite User-Agent and a connection pool of `pool_size`; no automatic retries."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def thread_sessions(pool_size: int = 4) -> Callable[[], requests.Session]:
    """A getter that gives each calling thread its own session (sessions are not shared across threads)."""
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = new_session(pool_size)
        return local.session

    return session


def check_status(response: requests.Response, url: str) -> None:
    """Raise NotFoundError / TransientError / PermanentError for a non-2xx response."""
    code = response.status_code
    if code < 400:
        return
    detail = f"HTTP {code} {response.reason or ''} for {url}".strip()
    if code == 404 or code == 410:
        raise NotFoundError(f"http_{code}", detail)
    if retryable_status(code):
        raise TransientError(f"http_{code}", detail, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    raise PermanentError(f"http_{code}", detail)


def get_text(session: requests.Session, url: str, params: dict[str, str], timeout: float) -> str:
    """GET a small text answer (e.g. the OA service), raising the same error kinds as `download`."""
    try:
        response = session.get(url, params=params, timeout=timeout)
        check_status(response, response.url)
        return response.text
    except requests.Timeout as error:
        raise TransientError("timeout", f"{url}: {error}") from error
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
        raise TransientError("connection", f"{url}: {error}") from error


def download(session: requests.Session, url: str, dest: Path, timeout: float) -> Fetched:
    """Stream `url` into `dest` (overwritten) byte for byte, honouring Content-Length; hash on the way.

    No content decoding is applied: a `.tar.gz` stays gzip even if a server labels it Content-Encoding: gzip.
    """
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            check_status(response, url)
            expected = response.headers.get("Content-Length")
            digest = hashlib.sha256()
            size = 0
            with open(dest, "wb") as out:
                for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
    except requests.Timeout as error:
        raise TransientError("timeout", f"{url}: {error}") from error
    except urllib3.exceptions.ReadTimeoutError as error:
        raise TransientError("timeout", f"{url}: {error}") from error
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.IncompleteRead) as error:
        reset = any(isinstance(arg, ConnectionError) for arg in error.args)
        reason = "connection_dropped" if reset else "truncated"
        raise TransientError(reason, f"{url}: body ended early ({error})") from error
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError) as error:
        raise TransientError("connection", f"{url}: {error}") from error
    if expected is not None and expected.isdigit() and int(expected) != size:
        raise TransientError("truncated", f"{url}: got {size} of {expected} bytes (Content-Length)")
    return Fetched(size, digest.hexdigest())

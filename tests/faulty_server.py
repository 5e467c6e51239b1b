"""A local HTTP server on 127.0.0.1 with fault injection, for testing code that talks to NCBI.

Serves the files under a folder (laid out like PMC's FTP tree), plus routes (e.g. an `oa.fcgi` OA service).
Faults are queued per path and used up one request at a time, then the file is served normally:

    with FaultyServer(root) as server:
        server.inject("/oa_package/08/e0/PMC13900.tar.gz", status(500), drop_mid_body(), truncated_body())
        server.serve_oa_service(moved={"PMC1": "oa_package/aa/bb/PMC1.tar.gz"}, not_open_access={"PMC2"})
        ... fetch from server.url ...
        assert server.package_requests() == 7

Also `write_mirror` lays real or generated packages out as `oa_package/xx/yy/PMCn.tar.gz` with a file list.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import quoteattr

OA_SERVICE_PATH = "/pmc/utils/oa/oa.fcgi"
FILE_LIST_HEADER = "File,Article Citation,Accession ID,Last Updated (YYYY-MM-DD HH:MM:SS),PMID,License\n"

Route = Callable[[dict[str, list[str]]], tuple[int, dict[str, str], bytes]]


@dataclass(frozen=True)
class Fault:
    """One misbehaviour for one request: `kind` is status | drop | truncate | stall."""

    kind: str
    status: int = 500
    fraction: float = 0.5
    seconds: float = 0.0


def status(code: int) -> Fault:
    """Answer with this HTTP status and a short body (e.g. 500, 503, 404, 429)."""
    return Fault("status", status=code)


def drop_mid_body(fraction: float = 0.5) -> Fault:
    """Send headers with the full Content-Length, part of the body, then reset the connection (RST)."""
    return Fault("drop", fraction=fraction)


def truncated_body(fraction: float = 0.5) -> Fault:
    """Send the correct Content-Length but a short body, then close the connection cleanly (FIN)."""
    return Fault("truncate", fraction=fraction)


def stall(seconds: float) -> Fault:
    """Wait `seconds` before answering (longer than the client's timeout = a timeout), then serve normally."""
    return Fault("stall", seconds=seconds)


def oa_record_answer(pmcid: str, relative: str, updated: str = "2020-01-01 00:00:00") -> bytes:
    """An oa.fcgi answer pointing at ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/<relative>, shaped like PMC's."""
    href = f"ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/{relative}"
    return (
        f"<OA><responseDate>2024-01-01 00:00:00</responseDate><request id={quoteattr(pmcid)}>"
        f"https://www.ncbi.nlm.nih.gov/pmc/utils/oa/oa.fcgi?id={pmcid}</request>"
        f'<records returned-count="1" total-count="1"><record id={quoteattr(pmcid)} citation="Test. 2020" '
        f'license="CC BY" retracted="no"><link format="tgz" updated={quoteattr(updated)} href={quoteattr(href)}/>'
        f"</record></records></OA>"
    ).encode()


def oa_error_answer(pmcid: str, code: str = "idIsNotOpenAccess") -> bytes:
    """An oa.fcgi error answer, e.g. `identifier 'PMC…' is not Open Access`."""
    message = f"identifier '{pmcid}' is not Open Access" if code == "idIsNotOpenAccess" else f"error for '{pmcid}'"
    return (
        f"<OA><responseDate>2024-01-01 00:00:00</responseDate><request id={quoteattr(pmcid)}>"
        f'https://www.ncbi.nlm.nih.gov/pmc/utils/oa/oa.fcgi?id={pmcid}</request><error code="{code}">{message}'
        f"</error></OA>"
    ).encode()


class FaultyServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 (random port) serving `root`, with per-path fault queues.

    `bytes_per_second` throttles every body (to make a download slow enough to interrupt);
    `latency` delays every answer (to emulate a network round trip).
    """

    def __init__(self, root: Path, bytes_per_second: float | None = None, latency: float = 0.0) -> None:
        self.root = Path(root).resolve()
        self.bytes_per_second = bytes_per_second
        self.latency = latency
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="faulty-server", daemon=True)

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. http://127.0.0.1:40123/."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def oa_service_url(self) -> str:
        return self.url.rstrip("/") + OA_SERVICE_PATH

    def start(self) -> FaultyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests of `path` ('/oa_package/…' or 'oa_package/…')."""
        with self._lock:
            self._faults.setdefault("/" + path.lstrip("/"), deque()).extend(faults)

    def route(self, path: str, handler: Route) -> None:
        """Answer `path` with handler(query) -> (status, headers, body) instead of a file."""
        self._routes["/" + path.lstrip("/")] = handler

    def serve_oa_service(self, moved: Mapping[str, str] | None = None, not_open_access: Iterable[str] = ()) -> None:
        """Install an oa.fcgi at OA_SERVICE_PATH: `moved` maps PMCID -> new relative path; others are errors."""
        moved = dict(moved or {})
        refused = set(not_open_access)

        def answer(query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
            pmcid = (query.get("id") or [""])[0]
            if pmcid in moved:
                body = oa_record_answer(pmcid, moved[pmcid])
            elif pmcid in refused:
                body = oa_error_answer(pmcid)
            else:
                body = oa_error_answer(pmcid, "idDoesNotExist")
            return 200, {"Content-Type": "text/xml"}, body

        self.route(OA_SERVICE_PATH, answer)

    def package_requests(self) -> int:
        """How many requests asked for a package (any path ending in .tar.gz)."""
        with self._lock:
            return sum(count for path, count in self.requests.items() if path.endswith(".tar.gz"))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            self.requests[path] += 1
            queue = self._faults.get(path)
            fault = queue.popleft() if queue else None
            self.log.append((path, fault.kind if fault else "ok"))
            return fault


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (timeouts, kills) are part of the tests, not errors worth a traceback."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def _handler_for(server: FaultyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes; don't let them wait on ACKs

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test output
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            parsed = urlparse(self.path)
            path = parsed.path
            fault = server._next_fault(path)
            if server.latency:
                time.sleep(server.latency)
            if fault and fault.kind == "stall":
                time.sleep(fault.seconds)
                fault = None
            if fault and fault.kind == "status":
                self._send_bytes(fault.status, {"Content-Type": "text/plain"}, f"injected {fault.status}\n".encode())
                return
            if path in server._routes:
                code, headers, body = server._routes[path](parse_qs(parsed.query))
                self._send_bytes(code, headers, body)
                return
            file = (server.root / path.lstrip("/")).resolve()
            if not file.is_relative_to(server.root) or not file.is_file():
                self._send_bytes(404, {"Content-Type": "text/plain"}, b"not found\n")
                return
            self._send_file(file, fault)

        def _send_bytes(self, code: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(code)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_file(self, file: Path, fault: Fault | None) -> None:
            body = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip" if file.name.endswith(".gz") else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault is None:
                self._write_throttled(body)
                return
            self._write_throttled(body[: int(len(body) * fault.fraction)])
            self.wfile.flush()
            self.close_connection = True
            if fault.kind == "drop":  # RST instead of FIN: the client sees a reset connection
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

        def _write_throttled(self, body: bytes) -> None:
            if not server.bytes_per_second:
                self.wfile.write(body)
                return
            step = max(1024, int(server.bytes_per_second / 20))
            for start in range(0, len(body), step):
                self.wfile.write(body[start : start + step])
                time.sleep(step / server.bytes_per_second)

    return Handler


def package_path(pmcid: str) -> str:
    """A PMC-like location `oa_package/xx/yy/PMCn.tar.gz` (xx/yy from a hash of the PMCID)."""
    digest = hashlib.md5(pmcid.encode()).hexdigest()  # noqa: S324 - layout only, not security
    return f"oa_package/{digest[:2]}/{digest[2:4]}/{pmcid}.tar.gz"


@dataclass(frozen=True)
class MirrorEntry:
    """One article of a test mirror (a row of its file list)."""

    pmcid: str
    file: str
    last_updated: str = "2020-01-01 00:00:00"
    license: str = "CC BY"
    pmid: str = ""
    citation: str = "Test J. 2020 Jan 1; 1(1):1"

    def csv_row(self) -> str:
        return f"{self.file},{self.citation},{self.pmcid},{self.last_updated},{self.pmid},{self.license}\n"


def write_file_list(root: Path, entries: Iterable[MirrorEntry], header: bool = True) -> Path:
    """Write root/oa_file_list.csv for `entries` (with PMC's header row unless `header` is False)."""
    path = Path(root) / "oa_file_list.csv"
    path.write_text((FILE_LIST_HEADER if header else "") + "".join(entry.csv_row() for entry in entries))
    return path


def write_mirror(
    root: Path, packages: Mapping[str, Path | bytes], header: bool = True, **row: str
) -> list[MirrorEntry]:
    """Lay packages (PMCID -> .tar.gz path or bytes) out under root/oa_package/xx/yy/ and write the file list.

    Extra keyword arguments (license, last_updated, ...) apply to every file-list row.
    """
    entries = []
    for pmcid, package in packages.items():
        entry = MirrorEntry(pmcid, package_path(pmcid), **row)
        target = Path(root) / entry.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(package if isinstance(package, bytes) else Path(package).read_bytes())
        entries.append(entry)
    write_file_list(root, entries, header)
    return entries


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

"""Fetch one package: stream to WS/tmp, verify (length, gzip, tar end to end, bounded by `workbench.tarwalk`),
rename into WS/mirror.

Runs in worker threads; it touches no database and returns a `PackageOutcome` for the main thread to record.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlparse

from workbench.acquire.http import CHUNK_BYTES, Fetched, NotFoundError, download, thread_sessions
from workbench.acquire.oaservice import OAService
from workbench.acquire.state import PackageOutcome
from workbench.errors import UserError
from workbench.retry import FetchError, PermanentError, RetryPolicy, TransientError, call_with_retries
from workbench.tarwalk import DEFAULT_MAX_MEMBERS, DEFAULT_TIME_BUDGET_S, TarBounds, TarLimitExceeded, is_gzip, walk_tar

DEFAULT_SOURCE = "https://ftp.ncbi.nlm.nih.gov/pub/pmc/"
DEFAULT_BOUNDS = TarBounds()


@dataclass(frozen=True)
class DownloadConfig:
    """How packages are fetched: parallel connections, per-request timeout (s), retries with backoff."""

    concurrency: int = 4
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_members: int = DEFAULT_MAX_MEMBERS  # a package with more entries is refused (`too_many_members`)
    verify_time_budget_s: float = DEFAULT_TIME_BUDGET_S  # seconds to verify one package (`time_budget_exceeded`)

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 64:
            raise UserError(f"--concurrency must be between 1 and 64, got {self.concurrency}")
        if self.timeout <= 0:
            raise UserError(f"--timeout must be positive, got {self.timeout}")
        if self.max_members < 1 or not self.verify_time_budget_s > 0:
            raise UserError("max_members and verify_time_budget_s must be positive")

    @property
    def bounds(self) -> TarBounds:
        return TarBounds(self.max_members, self.verify_time_budget_s)


class PackageSource(Protocol):
    """Where packages come from, addressed by paths relative to PMC's FTP root (`oa_package/xx/yy/PMC….tar.gz`)."""

    def describe(self, relative: str) -> str: ...

    def fetch(self, relative: str, dest: Path) -> Fetched: ...


class HttpSource:
    """An http(s) base laid out like https://ftp.ncbi.nlm.nih.gov/pub/pmc/ (one session per worker thread)."""

    def __init__(self, base_url: str, timeout: float, pool_size: int) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.session = thread_sessions(pool_size)

    def describe(self, relative: str) -> str:
        return self.base_url + quote(relative)

    def fetch(self, relative: str, dest: Path) -> Fetched:
        return download(self.session(), self.describe(relative), dest, self.timeout)


class LocalSource:
    """A local folder with the same layout (e.g. a sample mirror)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self, relative: str) -> str:
        return str(self.root / relative)

    def fetch(self, relative: str, dest: Path) -> Fetched:
        digest = hashlib.sha256()
        try:
            with open(self.root / relative, "rb") as source, open(dest, "wb") as out:
                for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    digest.update(chunk)
        except FileNotFoundError as error:
            raise NotFoundError("not_found", f"no such file {self.root / relative}") from error
        return Fetched(dest.stat().st_size, digest.hexdigest())


def open_source(base: str, config: DownloadConfig) -> PackageSource:
    """An http(s) URL, a file:// URL or a local folder; anything else is a UserError naming it."""
    scheme = urlparse(base).scheme.lower()
    if scheme in {"http", "https"}:
        return HttpSource(base, config.timeout, config.concurrency)
    folder = Path(unquote(urlparse(base).path)) if scheme == "file" else Path(base).expanduser()
    if not folder.is_dir():
        raise UserError(f"--source {base!r} is neither an http(s) URL nor an existing folder")
    return LocalSource(folder.resolve())


def verify_package(path: Path, bounds: TarBounds = DEFAULT_BOUNDS) -> None:
    """Read the whole gzip stream (CRC and length checked) and every tar header, within `bounds`.

    A damaged archive is a TransientError (`bad_archive`: the transfer may have gone wrong); one that breaks a
    bound (`too_many_members`, `time_budget_exceeded`, ...) a PermanentError: fetching it again gives the same.
    """
    if not is_gzip(path):
        raise TransientError("bad_archive", f"{path.name} is not a gzip file")
    try:
        for _archive, _member in walk_tar(path, bounds, drain=True):
            pass
    except TarLimitExceeded as error:
        raise PermanentError(error.reason, f"{path.name}: {error.detail}") from error
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise TransientError("bad_archive", f"{path.name} is not a readable .tar.gz: {error}") from error


@dataclass
class _Tries:
    """How many times one package was requested (all locations, all retries)."""

    count: int = 0


@dataclass(frozen=True)
class PackageFetcher:
    """Everything a worker needs to bring one package into the mirror."""

    source: PackageSource
    mirror: Path
    scratch: Path
    retry: RetryPolicy
    oa_service: OAService | None = None
    bounds: TarBounds = DEFAULT_BOUNDS

    def __call__(self, pmcid: str, file: str) -> PackageOutcome:
        partial = self.scratch / f"{pmcid}.{uuid.uuid4().hex}.part"
        tries = _Tries()
        location = file
        try:
            try:
                fetched = self._fetch_verified(file, partial, tries)
            except NotFoundError:
                if self.oa_service is None:
                    raise
                location, _ = call_with_retries(lambda: self.oa_service.current_package(pmcid), self.retry)
                fetched = self._fetch_verified(location, partial, tries)
            self._place(partial, file)
            return PackageOutcome(pmcid, tries.count, self.source.describe(location), fetched.bytes, fetched.sha256)
        except FetchError as error:
            return PackageOutcome(
                pmcid, tries.count, self.source.describe(location), reason=error.reason, error=error.detail
            )
        finally:
            partial.unlink(missing_ok=True)

    def _fetch_verified(self, relative: str, partial: Path, tries: _Tries) -> Fetched:
        def attempt() -> Fetched:
            tries.count += 1
            fetched = self.source.fetch(relative, partial)
            verify_package(partial, self.bounds)
            return fetched

        return call_with_retries(attempt, self.retry)[0]

    def _place(self, partial: Path, file: str) -> None:
        """Atomic rename into the mirror (same filesystem: WS/tmp and WS/mirror share the workspace)."""
        target = (self.mirror / file).resolve()
        if not target.is_relative_to(self.mirror.resolve()):
            raise PermanentError("unsafe_path", f"File {file!r} points outside the mirror")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)


def clear_scratch(scratch: Path) -> None:
    """Remove partial files a killed run left behind (call only while holding the acquire lock)."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True, exist_ok=True)

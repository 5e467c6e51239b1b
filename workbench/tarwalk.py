"""Bounded streaming walk over an untrusted `.tar.gz` (or plain tar): the one reader that extraction and
download verification share.

`walk_tar` yields each member header once, in stream order, and stops a hostile archive early with a
`TarLimitExceeded` carrying a snake_case `reason`:

- `too_many_members`: more headers than `TarBounds.max_members` (a package of a million empty members would
  otherwise cost tens of seconds and, since `tarfile` keeps every header, hundreds of MB);
- `time_budget_exceeded`: reading took longer than `TarBounds.time_budget_s` (checked on every read of the
  underlying stream, so skipping a member that inflates to gigabytes is bounded too);
- `oversized_header`: a pax / GNU long-name header larger than `MAX_EXTENDED_HEADER_BYTES` (tarfile reads
  those whole into memory);
- `sparse_member`: a sparse member (tarfile reads its map entry by entry).

A damaged archive raises what `tarfile`, `gzip` and `zlib` raise (`tarfile.TarError`, `EOFError`, `OSError`,
`zlib.error`); callers record those as they see fit.
"""

from __future__ import annotations

import gzip
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_EXTENDED_HEADER_BYTES = 1 << 20
DEFAULT_MAX_MEMBERS = 10_000  # real PMC packages hold at most a few hundred files
DEFAULT_TIME_BUDGET_S = 60.0
STREAM_BUFFER = 1 << 16  # small enough that a truncated archive loses little, big enough to skip fast
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class TarBounds:
    """Limits on reading one archive: member headers, and wall-clock seconds for the whole walk."""

    max_members: int = DEFAULT_MAX_MEMBERS
    time_budget_s: float = DEFAULT_TIME_BUDGET_S

    def __post_init__(self) -> None:
        if self.max_members < 1:
            raise ValueError(f"max_members must be at least 1, got {self.max_members!r}")
        if not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be positive, got {self.time_budget_s!r}")


class TarLimitExceeded(Exception):
    """The archive broke a bound (`reason`: too_many_members | time_budget_exceeded | oversized_header |
    sparse_member); `detail` says by how much."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.ends:
            raise TarLimitExceeded("time_budget_exceeded", f"reading took more than {self.seconds:g} s")


class _TimedStream:
    """A read-only file object that checks the deadline before every read of the stream below it."""

    def __init__(self, raw: BinaryIO, deadline: _Deadline) -> None:
        self.raw = raw
        self.deadline = deadline

    def read(self, size: int = -1) -> bytes:
        self.deadline.check()
        return self.raw.read(size)


class _GuardedTarInfo(tarfile.TarInfo):
    """TarInfo that refuses what tarfile would otherwise read whole into memory while parsing headers.

    tarfile reads pax and GNU long-name headers entirely, and sparse maps entry by entry; a hostile archive can
    declare gigabytes there. These hooks are private tarfile methods, stable since Python 3.2.
    """

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_HEADER_TYPES and self.size > MAX_EXTENDED_HEADER_BYTES:
            raise TarLimitExceeded("oversized_header", f"extended header of {self.size} bytes")
        return super()._proc_member(tarfile_)

    def _proc_sparse(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        raise TarLimitExceeded("sparse_member", self.name)

    def _proc_gnusparse_00(self, next_: tarfile.TarInfo, pax_headers: dict, buf: bytes) -> None:
        raise TarLimitExceeded("sparse_member", self.name)

    def _proc_gnusparse_01(self, next_: tarfile.TarInfo, pax_headers: dict) -> None:
        raise TarLimitExceeded("sparse_member", self.name)

    def _proc_gnusparse_10(self, next_: tarfile.TarInfo, pax_headers: dict, tarfile_: tarfile.TarFile) -> None:
        raise TarLimitExceeded("sparse_member", self.name)


_EXTENDED_HEADER_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


def is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def walk_tar(
    path: str | Path, bounds: TarBounds = TarBounds(), *, drain: bool = False
) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Yield `(archive, member)` for every header of the archive at `path`, within `bounds`.

    The caller may read the current member with `archive.extractfile(member)` before asking for the next one.
    With `drain=True` the bytes after the tar end marker are read too, so a gzip stream is checked to its
    end (CRC and length), as download verification needs. Headers are not kept: memory stays flat however
    many members the archive holds.
    """
    path = Path(path)
    deadline = _Deadline(bounds.time_budget_s)
    with gzip.open(path, "rb") if is_gzip(path) else path.open("rb") as raw:
        stream = _TimedStream(raw, deadline)
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_GuardedTarInfo, bufsize=STREAM_BUFFER) as archive:
            count = 0
            while (member := archive.next()) is not None:
                archive.members.clear()  # tarfile keeps every header it has read; we never look back
                count += 1
                if count > bounds.max_members:
                    raise TarLimitExceeded("too_many_members", f"more than {bounds.max_members} members")
                yield archive, member
        if drain:
            while stream.read(STREAM_BUFFER):
                pass

"""Deterministic POSIX (ustar) tar writing and reading by offset: the one tar module of the project.

Every member is a plain ustar regular file with fixed mtime/uid/gid/mode, so the same samples in the same
order always give the same bytes; a pax record carries names over 100 bytes. Extraction (`ShardWriter`)
and subsets (which copy member data behind fresh headers) both write through here, and `read_member`
reads a member back by the offset recorded in the catalog.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

BLOCK = 512
RECORD = 20 * BLOCK  # tar record size; archives are padded to a whole record like tar(1) and tarfile do
MEMBER_MTIME = 946684800  # 2000-01-01T00:00:00Z: fixed, and not "implausibly old" for GNU tar
MEMBER_MODE = 0o644
_NAME_FIELD = 100


@dataclass(frozen=True)
class MemberLocation:
    """Where a member's data lies inside its shard: `data = shard[offset:offset + size]`."""

    offset: int
    size: int


def _octal(value: int, width: int) -> bytes:
    """A NUL-terminated octal number field of `width` bytes."""
    digits = f"{value:0{width - 1}o}".encode("ascii")
    if len(digits) > width - 1:
        raise ValueError(f"{value} does not fit a {width}-byte tar field")
    return digits + b"\0"


def _field(text: bytes, width: int) -> bytes:
    if len(text) > width:
        raise ValueError(f"{text!r} is longer than {width} bytes")
    return text.ljust(width, b"\0")


def _header(name: bytes, size: int, typeflag: bytes = b"0") -> bytes:
    """One 512-byte ustar header for a regular file (or a pax 'x' record) with the fixed metadata."""
    fields = [
        _field(name, _NAME_FIELD),
        _octal(MEMBER_MODE, 8),
        _octal(0, 8),  # uid
        _octal(0, 8),  # gid
        _octal(size, 12),
        _octal(MEMBER_MTIME, 12),
        b" " * 8,  # checksum placeholder
        typeflag,
        _field(b"", 100),  # linkname
        b"ustar\x0000",
        _field(b"", 32),  # uname
        _field(b"", 32),  # gname
        _field(b"", 8),  # devmajor
        _field(b"", 8),  # devminor
        _field(b"", 155),  # prefix
    ]
    block = b"".join(fields).ljust(BLOCK, b"\0")
    checksum = f"{sum(block):06o}".encode("ascii") + b"\0 "
    return block[:148] + checksum + block[156:]


def _pax_record(keyword: str, value: str) -> bytes:
    """A pax extended-header record `"<len> keyword=value\\n"` (its length counts itself)."""
    body = f" {keyword}={value}\n".encode()
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def member_headers(name: str, size: int) -> bytes:
    """Header bytes that precede a member's data: one ustar block, or a pax record first for names over 100 bytes."""
    encoded = name.encode("utf-8")
    if len(encoded) <= _NAME_FIELD and encoded.isascii():
        return _header(encoded, size)
    pax = _pax_record("path", name)
    short = ("PaxHeaders/" + name)[:_NAME_FIELD].encode("ascii", "replace")
    return _header(short, len(pax), b"x") + pax + _padding(len(pax)) + _header(encoded[:_NAME_FIELD], size)


class ShardWriter:
    """Append samples (`key.ext` members, in the order given) to a new tar file and report member locations."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()/__exit__
        self._offset = 0
        self.samples = 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._offset += len(data)

    def add_member(self, name: str, data: bytes) -> MemberLocation:
        self._write(member_headers(name, len(data)))
        location = MemberLocation(self._offset, len(data))
        self._write(data)
        self._write(_padding(len(data)))
        return location

    def add_sample(self, key: str, members: Mapping[str, bytes]) -> dict[str, MemberLocation]:
        """Write `key.<ext>` for each extension in `members` (kept together, as WebDataset requires)."""
        if "." in key or "/" in key or not key:
            raise ValueError(f"invalid sample key {key!r}: it must be non-empty and contain no '.' or '/'")
        locations = {ext: self.add_member(f"{key}.{ext}", data) for ext, data in members.items()}
        self.samples += 1
        return locations

    @property
    def bytes_written(self) -> int:
        return self._offset

    def close(self) -> None:
        """End the archive (two zero blocks, padded to a whole record) and flush it to disk."""
        if self._file.closed:
            return
        self._write(b"\0" * (2 * BLOCK))
        self._write(b"\0" * (-self._offset % RECORD))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def read_member(shard: str | Path, location: MemberLocation) -> bytes:
    """The data of one member, read by its recorded location."""
    with open(shard, "rb") as handle:
        handle.seek(location.offset)
        data = handle.read(location.size)
    if len(data) != location.size:
        raise ValueError(f"{shard}: member at offset {location.offset} is truncated")
    return data

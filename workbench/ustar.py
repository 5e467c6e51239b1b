"""Deterministic POSIX (ustar) tar writing and reading by offset: the one tar module of the project.

Every member is a plain ustar regular file with fixed mtime/uid/gid/mode, so the same samples in the same
order always give the same bytes; a pax record carries names over 100 bytes. Extraction (`ShardWriter`)
and subsets (which copy member data behind fresh headers) both write through here, and `read_member`
reads a member back by the offset recorded in the catalog.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

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


def _write_all(fd: int, chunks: Sequence[bytes | memoryview]) -> int:
    """Write `chunks` with one `writev` (finishing short writes); return the number of bytes."""
    total = sum(len(chunk) for chunk in chunks)
    written = os.writev(fd, chunks)
    if written < total:
        rest = b"".join(bytes(chunk) for chunk in chunks)[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]
    return total


def _update(digest: Any, chunks: Sequence[bytes | memoryview]) -> None:
    for chunk in chunks:
        digest.update(chunk)


class ShardWriter:
    """Append samples (`key.ext` members, in the order given) to a new tar file and report member locations.

    Each sample is one `writev` of its headers, data and padding (data may be memoryviews into a larger
    buffer, never joined). With `sha256=True` the archive's SHA-256 is computed while it is written, on a
    helper thread (hashlib releases the GIL), and is `sha256` after `close()`. `exclusive=True` refuses to
    overwrite an existing file.
    """

    _MAX_PENDING = 64  # hash updates queued behind the writes (bounds the memory they keep alive)

    def __init__(self, path: str | Path, *, sha256: bool = False, exclusive: bool = False) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self._offset = 0
        self.samples = 0
        self.sha256: str | None = None
        self._digest = hashlib.sha256() if sha256 else None
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ustar-sha256") if sha256 else None
        self._pending: deque[Future] = deque()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _write(self, chunks: Sequence[bytes | memoryview]) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        self._offset += _write_all(self._fd, chunks)
        if self._hasher is not None:
            self._pending.append(self._hasher.submit(_update, self._digest, chunks))
            while len(self._pending) > self._MAX_PENDING:
                self._pending.popleft().result()

    def _chunks(self, name: str, data: bytes | memoryview, chunks: list) -> MemberLocation:
        header = member_headers(name, len(data))
        position = self._offset + sum(len(chunk) for chunk in chunks)
        chunks += [header, data]
        if padding := _padding(len(data)):
            chunks.append(padding)
        return MemberLocation(position + len(header), len(data))

    def add_member(self, name: str, data: bytes | memoryview) -> MemberLocation:
        chunks: list[bytes | memoryview] = []
        location = self._chunks(name, data, chunks)
        self._write(chunks)
        return location

    def add_sample(self, key: str, members: Mapping[str, bytes | memoryview]) -> dict[str, MemberLocation]:
        """Write `key.<ext>` for each extension in `members` (kept together, as WebDataset requires)."""
        if "." in key or "/" in key or not key:
            raise ValueError(f"invalid sample key {key!r}: it must be non-empty and contain no '.' or '/'")
        chunks: list[bytes | memoryview] = []
        locations = {ext: self._chunks(f"{key}.{ext}", data, chunks) for ext, data in members.items()}
        self._write(chunks)
        self.samples += 1
        return locations

    @property
    def bytes_written(self) -> int:
        return self._offset

    def close(self) -> None:
        """End the archive (two zero blocks, padded to a whole record) and flush it to disk."""
        if self._fd is None:
            return
        end = 2 * BLOCK
        self._write([b"\0" * (end + (-(self._offset + end) % RECORD))])
        os.fsync(self._fd)
        self._release()
        if self._hasher is not None:
            self.sha256 = self._hasher.submit(self._digest.hexdigest).result()  # after every queued update
            self._hasher.shutdown(wait=True)

    def abort(self) -> None:
        """Stop after a failure without finishing the archive (the caller removes the file)."""
        self._release()
        if self._hasher is not None:
            self._hasher.shutdown(wait=True, cancel_futures=True)

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._pending.clear()


def read_member(shard: str | Path, location: MemberLocation) -> bytes:
    """The data of one member, read by its recorded location."""
    with open(shard, "rb") as handle:
        handle.seek(location.offset)
        data = handle.read(location.size)
    if len(data) != location.size:
        raise ValueError(f"{shard}: member at offset {location.offset} is truncated")
    return data

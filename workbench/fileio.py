"""The one way to write files durably and atomically, and to read the small JSON files runs leave behind.

Writers go through a temporary name in the target's folder, fsync the file, rename it into place and fsync
the folder, so a reader (or a run resumed after a crash or `kill -9`) sees either the old file or the whole
new one. `read_json` names the file when it is empty or damaged (`CorruptFile`), so callers can redo the
work it marks instead of failing with a bare "Expecting value".
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class CorruptFile(ValueError):
    """A marker, manifest or state file that exists but cannot be read; the message names it."""


def fsync_folder(folder: Path) -> None:
    """Make renames and creations inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextmanager
def atomic_path(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error, it replaces `path`.

    The caller writes the temporary file by any means (Parquet writers, tar writers, ...). On error the
    temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        if durable:
            fsync_file(temporary)
        os.replace(temporary, path)
        if durable:
            fsync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes_atomically(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to `path` atomically (and durably unless `durable=False`)."""
    path = Path(path)
    with atomic_path(path, durable=durable) as temporary:
        temporary.write_bytes(data)
    return path


def json_bytes(data: Any) -> bytes:
    """The project's JSON file format: sorted keys, one-space indent, trailing newline."""
    return (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode()


def write_json_atomically(data: Any, path: str | Path, *, durable: bool = True) -> Path:
    return write_bytes_atomically(path, json_bytes(data), durable=durable)


def write_parquet_atomically(table: Any, path: str | Path, *, compression: str = "zstd", **options: Any) -> Path:
    """Write a pyarrow Table as Parquet atomically and durably."""
    import pyarrow.parquet as pq

    path = Path(path)
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary, compression=compression, **options)
    return path


def read_json(path: str | Path, *, default: Callable[[], Any] | None = None) -> Any:
    """Parse a JSON file; a missing file gives `default()` (or FileNotFoundError), a damaged one `CorruptFile`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        if default is not None:
            return default()
        raise
    try:
        return json.loads(text)
    except ValueError as error:
        raise CorruptFile(f"{path} is damaged ({'empty' if not text.strip() else error}); it will be redone") from error


def file_sha256(path: str | Path, chunk: int = 8 << 20) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()

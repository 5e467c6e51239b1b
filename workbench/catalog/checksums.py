"""SHA-256 of the workspace's shards, cached by (size, mtime) in WS/cache/file_sha256.json so each is hashed once.

Only regular files inside WS/shards are ever opened or hashed: `shard_path` resolves a relative path
(symlinks included) and refuses anything else with a `UserError` naming it, without opening it, and
`open_regular` refuses what is not a regular file once opened (no FIFO, device or symlink swapped in).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from workbench.errors import UserError
from workbench.fileio import CorruptFile, read_json, write_json_atomically
from workbench.workspace import Workspace

CACHE_FILE = "file_sha256.json"
__all__ = ["ChecksumCache", "file_sha256", "open_regular", "read_small_file", "shard_path"]


class NotAShard(UserError):
    """A path that is not a regular file inside the workspace's shard folder."""


def shard_path(workspace: Workspace, relative: object) -> Path:
    """WS/<relative>, resolved, when it is a regular file inside WS/shards; `NotAShard` otherwise (nothing opened)."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise NotAShard(f"source shard {relative!r} is not a path inside {workspace.shards}")
    folder = workspace.shards.resolve()
    try:
        path = (workspace.root / relative).resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop, an unreadable folder
        raise NotAShard(f"source shard {relative!r} cannot be resolved ({error})") from None
    shown = repr(relative) if str(path) == relative else f"{relative!r} ({path})"
    if not path.is_relative_to(folder) or path == folder:
        raise NotAShard(f"source shard {shown} is outside the workspace's shard folder {folder}")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as error:
        raise FileNotFoundError(f"source shard {path} is missing") from error
    except OSError as error:
        raise NotAShard(f"source shard {shown} cannot be read ({error})") from None
    if not stat.S_ISREG(mode):
        raise NotAShard(f"source shard {shown} is not a regular file")
    return path


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open `path` read-only without blocking or following a final symlink; refuse anything but a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotAShard(f"{path} is not a regular file")
    return fd, info


def read_small_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (a FIFO, device or huge file is refused unread)."""
    try:
        fd, info = open_regular(path)
    except NotAShard:
        raise NotAShard(f"{what} {path} is not a regular file") from None
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise NotAShard(f"{what} {path} is larger than {limit} bytes")
        return handle.read(limit + 1)[:limit]


def file_sha256(path: str | Path, chunk: int = 8 << 20) -> str:
    """SHA-256 of a regular file, read in chunks."""
    fd, _ = open_regular(Path(path))
    with os.fdopen(fd, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _recorded_by_extraction(path: Path, size: int) -> str | None:
    """The sha256 extraction wrote into the shard's `NNNNNN_stats.json`, if it describes this very file."""
    try:
        stats = json.loads(read_small_file(path.with_name(path.stem + "_stats.json"), 1 << 20, "shard statistics"))
    except (OSError, ValueError):  # missing, not a regular file, damaged: hash the shard instead
        return None
    return stats.get("sha256") if isinstance(stats, dict) and stats.get("bytes") == size else None


class ChecksumCache:
    """`sha256(relative)` for shards under WS/shards; entries go stale when size or mtime change."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.path = workspace.cache / CACHE_FILE
        try:
            entries = read_json(self.path, default=dict)
        except CorruptFile:
            entries = {}
        self._entries: dict[str, dict] = entries if isinstance(entries, dict) else {}
        self._dirty = False

    def sha256(self, relative: str) -> tuple[str, int]:
        """(sha256, size) of WS/<relative>; `NotAShard` outside WS/shards, FileNotFoundError when it is gone."""
        path = shard_path(self.workspace, relative)
        fd, info = open_regular(path)
        try:
            entry = self._entries.get(relative)
            if entry and entry.get("size") == info.st_size and entry.get("mtime_ns") == info.st_mtime_ns:
                return entry["sha256"], info.st_size
            digest = _recorded_by_extraction(path, info.st_size)
            if digest is None:
                with os.fdopen(os.dup(fd), "rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
        finally:
            os.close(fd)
        self._entries[relative] = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": digest}
        self._dirty = True
        return digest, info.st_size

    def save(self) -> None:
        if not self._dirty:
            return
        write_json_atomically(self._entries, self.path)
        self._dirty = False

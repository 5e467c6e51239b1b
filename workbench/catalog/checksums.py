"""SHA-256 of workspace files, cached by (size, mtime) in WS/cache/file_sha256.json so shards are hashed once."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.fileio import file_sha256, write_json_atomically
from workbench.workspace import Workspace

CACHE_FILE = "file_sha256.json"
__all__ = ["ChecksumCache", "file_sha256"]


def _recorded_by_extraction(path: Path, size: int) -> str | None:
    """The sha256 extraction wrote into the shard's `NNNNNN_stats.json`, if it describes this very file."""
    try:
        stats = json.loads(path.with_name(path.stem + "_stats.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return stats.get("sha256") if stats.get("bytes") == size else None


class ChecksumCache:
    """`sha256(relative)` for files under the workspace root; entries go stale when size or mtime change."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.path = workspace.cache / CACHE_FILE
        try:
            self._entries: dict[str, dict] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self._entries = {}
        self._dirty = False

    def sha256(self, relative: str) -> tuple[str, int]:
        """(sha256, size) of WS/<relative>; FileNotFoundError names the file when it is gone."""
        path = self.workspace.root / relative
        try:
            stat = path.stat()
        except FileNotFoundError as error:
            raise FileNotFoundError(f"source shard {path} is missing") from error
        entry = self._entries.get(relative)
        if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
            return entry["sha256"], stat.st_size
        digest = _recorded_by_extraction(path, stat.st_size) or file_sha256(path)
        self._entries[relative] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        self._dirty = True
        return digest, stat.st_size

    def save(self) -> None:
        if not self._dirty:
            return
        write_json_atomically(self._entries, self.path)
        self._dirty = False

"""SHA-256 of workspace files, cached by (size, mtime) in WS/cache/file_sha256.json so shards are hashed once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from workbench.workspace import Workspace

CACHE_FILE = "file_sha256.json"
_CHUNK = 8 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
        digest = file_sha256(path)
        self._entries[relative] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        self._dirty = True
        return digest, stat.st_size

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._entries, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.path)
        self._dirty = False

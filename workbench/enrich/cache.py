"""Raw E-utilities responses on disk, one file per batch, so re-runs send no request."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workbench.fileio import write_bytes_atomically


@dataclass(frozen=True)
class CachedBatch:
    """One stored response: the PMIDs that were asked for and the file holding NCBI's answer."""

    key: str
    pmids: tuple[str, ...]
    path: Path
    fetched_at: datetime


class ResponseCache:
    """`<folder>/<key>.xml` holds a raw response, `<key>.json` the PMIDs asked for (written last: it marks
    the entry complete). The key is a hash of the sorted PMIDs of the batch."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def key(pmids: Sequence[str]) -> str:
        joined = ",".join(sorted(set(pmids), key=int))
        return hashlib.sha256(f"efetch pubmed xml:{joined}".encode()).hexdigest()[:32]

    def index(self) -> dict[str, CachedBatch]:
        """PMID -> the stored batch that asked for it (the newest when several did)."""
        batches = []
        for marker in self.folder.glob("*.json") if self.folder.is_dir() else ():
            batch = self._read_marker(marker)
            if batch is not None:
                batches.append(batch)
        batches.sort(key=lambda batch: batch.fetched_at)
        return {pmid: batch for batch in batches for pmid in batch.pmids}

    def store(self, pmids: Sequence[str], body: bytes) -> CachedBatch:
        """Write `body` as the answer for `pmids`, atomically (temp file + rename, marker last)."""
        key = self.key(pmids)
        batch = CachedBatch(key, tuple(sorted(set(pmids), key=int)), self.folder / f"{key}.xml", datetime.now(UTC))
        marker = {
            "db": "pubmed",
            "pmids": list(batch.pmids),
            "response": batch.path.name,
            "fetched_at": batch.fetched_at.isoformat(),
        }
        self._write_atomically(batch.path, body)
        self._write_atomically(batch.path.with_suffix(".json"), json.dumps(marker).encode())
        return batch

    def _read_marker(self, marker: Path) -> CachedBatch | None:
        try:
            content = json.loads(marker.read_text())
            batch = CachedBatch(
                key=marker.stem,
                pmids=tuple(content["pmids"]),
                path=self.folder / content["response"],
                fetched_at=datetime.fromisoformat(content["fetched_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a foreign or damaged file is not a cache entry: its PMIDs are simply fetched again
        return batch if batch.path.is_file() else None

    def _write_atomically(self, path: Path, data: bytes) -> None:
        write_bytes_atomically(path, data)

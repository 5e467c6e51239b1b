"""The on-disk format of an embedding set, WS/embeddings/NAME/ (the contract between embed, cluster, map, explore).

    card.json                 the model card: spec, checkpoint sha256, preprocessing, dims, counts, seconds
    NNNNNN.keys.txt           sample keys of source shard NNNNNN, one per line, in row order
    NNNNNN.image.npy          float16 (rows, dim) image embeddings (L2-normalised when the model is contrastive)
    NNNNNN.text.npy           float16 (rows, dim) caption embeddings, only for models with a text tower
    NNNNNN.done.json          the marker written last: {"rows", "seconds", "files": {name: sha256}}

A shard counts only when its marker exists, so readers never see a half-written shard.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.fileio import atomic_path, file_sha256, read_json, write_bytes_atomically, write_json_atomically
from workbench.workspace import Workspace

CARD = "card.json"
TOWERS = ("image", "text")


@dataclass(frozen=True)
class EmbeddingSet:
    """Read access to WS/embeddings/NAME/."""

    folder: Path

    @classmethod
    def of(cls, workspace: Workspace, name: str) -> EmbeddingSet:
        return cls(workspace.root / "embeddings" / name)

    @property
    def card(self) -> dict[str, Any]:
        return read_json(self.folder / CARD)

    def shards(self) -> list[str]:
        """Names (NNNNNN) of the complete shards, sorted."""
        return sorted(p.name.removesuffix(".done.json") for p in self.folder.glob("*.done.json"))

    def shard_keys(self, shard: str) -> list[str]:
        return (self.folder / f"{shard}.keys.txt").read_text().splitlines()

    def shard_vectors(self, shard: str, tower: str = "image") -> np.ndarray:
        """(rows, dim) float16, memory-mapped."""
        return np.load(self.folder / f"{shard}.{tower}.npy", mmap_mode="r")

    def iter_shards(self, tower: str = "image") -> Iterator[tuple[str, list[str], np.ndarray]]:
        for shard in self.shards():
            yield shard, self.shard_keys(shard), self.shard_vectors(shard, tower)

    def load(self, tower: str = "image") -> tuple[list[str], np.ndarray]:
        """All keys and vectors (float32), in shard order."""
        keys: list[str] = []
        blocks: list[np.ndarray] = []
        for _, shard_keys, vectors in self.iter_shards(tower):
            keys += shard_keys
            blocks.append(np.asarray(vectors, dtype=np.float32))
        dim = int(self.card.get("dims", {}).get(tower, 0)) if (self.folder / CARD).exists() else 0
        return keys, np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)


def shard_done(folder: Path, shard: str) -> bool:
    """Whether shard NNNNNN of the set in `folder` is complete (its marker exists)."""
    return (folder / f"{shard}.done.json").exists()


def write_shard(
    folder: Path, shard: str, keys: list[str], vectors: dict[str, np.ndarray], seconds: float
) -> dict[str, Any]:
    """Write one shard's keys and float16 arrays (each atomically), then its marker last; return the marker."""
    files: dict[str, str] = {}
    keys_path = folder / f"{shard}.keys.txt"
    write_bytes_atomically(keys_path, "".join(f"{key}\n" for key in keys).encode())
    files[keys_path.name] = file_sha256(keys_path)
    for tower, array in vectors.items():
        if tower not in TOWERS or len(array) != len(keys):
            raise ValueError(f"shard {shard}: tower {tower!r} has {len(array)} rows for {len(keys)} keys")
        path = folder / f"{shard}.{tower}.npy"
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array, dtype=np.float16), allow_pickle=False)
        files[path.name] = file_sha256(path)
    marker = {"rows": len(keys), "seconds": round(seconds, 3), "files": files}
    write_json_atomically(marker, folder / f"{shard}.done.json")
    return marker


def write_card(folder: Path, card: dict[str, Any]) -> None:
    write_json_atomically(card, folder / CARD)

"""Vector indexes of an embedding set, WS/indexes/NAME/ (faiss, memory-mapped), built and extended incrementally.

    index.json                the manifest, written last: generation, shards covered, rows, per tower the faiss
                              factory string, kind (exact | approximate), nprobe, file; the build parameters
    keys.GEN.npy              row -> sample key (fixed-width bytes, memory-mapped)
    image.GEN.faiss           inner-product index over the image vectors (cosine: the vectors are L2-normalised)
    text.GEN.faiss            the same over the caption vectors, for models with a text tower

Small sets get an exact `Flat` index; above `flat_max_rows` an `IVF{nlist},SQ8` index (8-bit codes, a quarter of
the float32 size) searched with `nprobe` lists. A re-run after new shards were embedded adds only their rows (the
IVF quantiser is kept); files of a new generation are written first and the manifest names them, so a reader never
sees a half-written index and a killed run leaves the previous one intact.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.embed.store import EmbeddingSet
from workbench.errors import InputNotFound, UserError
from workbench.extras import require
from workbench.fileio import atomic_path, read_json, write_json_atomically
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

MANIFEST = "index.json"
TOWERS = ("image", "text")


@dataclass(frozen=True)
class IndexConfig:
    """How an index is chosen: exact up to `flat_max_rows`, IVF-SQ8 above (nlist from the size unless given)."""

    flat_max_rows: int = 200_000
    nlist: int | None = None
    nprobe: int = 64
    train_rows_per_list: int = 64
    seed: int = 0

    def nlist_for(self, rows: int) -> int:
        if self.nlist:
            return self.nlist
        return int(min(65_536, max(256, 2 ** round(math.log2(4 * math.sqrt(max(rows, 1)))))))

    def factory_for(self, rows: int) -> str:
        return "Flat" if rows <= self.flat_max_rows else f"IVF{self.nlist_for(rows)},SQ8"


@dataclass(frozen=True)
class IndexReport:
    name: str
    rows: int
    added_rows: int
    shards: int
    towers: dict[str, str]
    rebuilt: bool
    seconds: float

    def describe(self) -> str:
        kinds = ", ".join(f"{tower} {factory}" for tower, factory in self.towers.items())
        how = "built" if self.rebuilt else ("extended" if self.added_rows else "up to date")
        return (
            f"index {self.name}: {how}, {self.rows:,} rows from {self.shards} shards "
            f"(+{self.added_rows:,}); {kinds}; {self.seconds:.1f} s"
        )


def index_folder(workspace: Workspace, name: str) -> Path:
    return workspace.root / "indexes" / name


def _faiss() -> Any:
    return require("faiss", "embed", "vector search")


def _new_index(faiss: Any, factory: str, vectors: np.ndarray, config: IndexConfig) -> Any:
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        rows = min(len(vectors), config.train_rows_per_list * config.nlist_for(len(vectors)))
        sample = np.random.default_rng(config.seed).choice(len(vectors), rows, replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
    return index


def _add(index: Any, vectors: np.ndarray, block: int = 65_536) -> None:
    for start in range(0, len(vectors), block):
        index.add(np.ascontiguousarray(vectors[start : start + block], dtype=np.float32))


def _write_index(faiss: Any, index: Any, path: Path) -> None:
    with atomic_path(path) as temporary:
        faiss.write_index(index, str(temporary))


def _write_keys(keys: np.ndarray, path: Path) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, keys, allow_pickle=False)


def _vectors(embeddings: EmbeddingSet, shards: list[str], tower: str) -> np.ndarray:
    blocks = [np.asarray(embeddings.shard_vectors(shard, tower), dtype=np.float32) for shard in shards]
    return np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)


def _keys(embeddings: EmbeddingSet, shards: list[str]) -> np.ndarray:
    keys = [key for shard in shards for key in embeddings.shard_keys(shard)]
    return np.array(keys, dtype=f"S{max((len(k.encode()) for k in keys), default=1)}")


def build_index(
    workspace: Workspace | str | Path,
    embeddings_name: str,
    config: IndexConfig = IndexConfig(),
    *,
    rebuild: bool = False,
) -> IndexReport:
    """Index every complete shard of WS/embeddings/NAME; only the new shards when an index exists."""
    started = time.perf_counter()
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    embeddings = EmbeddingSet.of(workspace, embeddings_name)
    if not (embeddings.folder / "card.json").exists():
        raise InputNotFound(f"no embedding set {embeddings_name!r} at {embeddings.folder}; run `workbench embed`")
    faiss = _faiss()
    folder = index_folder(workspace, embeddings_name)
    folder.mkdir(parents=True, exist_ok=True)
    workspace.locks.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(workspace.locks / f"index-{embeddings_name}.lock", f"the index {embeddings_name}"):
        card = embeddings.card
        towers = [tower for tower in card.get("towers", ["image"]) if tower in TOWERS]
        shards = embeddings.shards()
        if not shards:
            raise UserError(f"embedding set {embeddings_name!r} has no complete shard yet; run `workbench embed`")
        old = read_json(folder / MANIFEST, default=dict)
        if old and old.get("card_spec") != card.get("spec"):
            rebuild = True  # the set was re-embedded with another model
        covered = list(old.get("shards", [])) if old and not rebuild else []
        if set(covered) - set(shards):
            covered, rebuild = [], True  # shards disappeared: start again
        new = [shard for shard in shards if shard not in set(covered)]
        total = int(old.get("rows", 0)) * bool(covered) + sum(len(embeddings.shard_keys(s)) for s in new)
        kinds = {tower: config.factory_for(total) for tower in towers}
        if covered and any(old["towers"].get(t, {}).get("factory") != kinds[t] for t in towers):
            covered, new = [], shards  # grew past the exact size: rebuild as IVF
        if covered and not new:
            return IndexReport(embeddings_name, total, 0, len(shards), kinds, False, time.perf_counter() - started)
        generation = int(old.get("generation", 0)) + 1
        files: dict[str, dict[str, Any]] = {}
        for tower in towers:
            vectors = _vectors(embeddings, new, tower)
            if covered:
                index = faiss.read_index(str(folder / old["towers"][tower]["file"]))
            else:
                index = _new_index(faiss, kinds[tower], vectors, config)
            _add(index, vectors)
            path = folder / f"{tower}.{generation}.faiss"
            _write_index(faiss, index, path)
            files[tower] = {
                "file": path.name,
                "factory": kinds[tower],
                "kind": "exact" if kinds[tower] == "Flat" else "approximate",
                "nprobe": config.nprobe if kinds[tower] != "Flat" else None,
                "dim": int(index.d),
                "rows": int(index.ntotal),
            }
        keys = _keys(embeddings, new)
        if covered:
            previous = np.load(folder / old["keys"], mmap_mode="r")
            keys = np.concatenate([previous.astype(f"S{max(previous.itemsize, keys.itemsize)}"), keys])
        keys_path = folder / f"keys.{generation}.npy"
        _write_keys(keys, keys_path)
        manifest = {
            "embeddings": embeddings_name,
            "card_spec": card.get("spec"),
            "normalised": card.get("normalised", False),
            "generation": generation,
            "shards": shards,
            "rows": len(keys),
            "keys": keys_path.name,
            "towers": files,
            "config": asdict(config),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json_atomically(manifest, folder / MANIFEST)
        _remove_old_generations(folder, manifest)
        added = len(keys) - (int(old.get("rows", 0)) if covered else 0)
        seconds = time.perf_counter() - started
        return IndexReport(embeddings_name, len(keys), added, len(shards), kinds, not covered, seconds)


def _remove_old_generations(folder: Path, manifest: dict[str, Any]) -> None:
    keep = {manifest["keys"], MANIFEST, *(entry["file"] for entry in manifest["towers"].values())}
    for path in folder.iterdir():
        if path.is_file() and path.name not in keep and path.suffix in (".faiss", ".npy"):
            path.unlink(missing_ok=True)


@dataclass
class VectorIndex:
    """An opened index: memory-mapped faiss indexes per tower and the row -> key array."""

    folder: Path
    manifest: dict[str, Any]
    indexes: dict[str, Any]
    keys: np.ndarray
    _order: np.ndarray | None = None
    _sorted_keys: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.keys)

    @property
    def towers(self) -> tuple[str, ...]:
        return tuple(self.indexes)

    def key(self, row: int) -> str:
        return bytes(self.keys[row]).decode()

    def rows_of(self, keys: list[str]) -> np.ndarray:
        """Row numbers of the given keys (those not indexed are dropped)."""
        if self._order is None:
            self._order = np.argsort(self.keys, kind="stable")
            self._sorted_keys = self.keys[self._order]
        wanted = np.array([k.encode() for k in keys], dtype=self.keys.dtype) if keys else np.zeros(0, self.keys.dtype)
        sorted_keys = self._sorted_keys
        at = np.clip(np.searchsorted(sorted_keys, wanted), 0, max(self.rows - 1, 0))
        found = sorted_keys[at] == wanted if self.rows else np.zeros(len(wanted), bool)
        return np.sort(self._order[at[found]]).astype(np.int64)

    def search(
        self, tower: str, query: np.ndarray, k: int, rows: np.ndarray | None = None, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) of one query vector; `rows` limits the search to those rows (pre-filtering)."""
        faiss = _faiss()
        index = self.indexes[tower]
        vector = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        params = None
        probe = nprobe or self.manifest["towers"][tower].get("nprobe")
        if rows is not None:
            selector = faiss.IDSelectorBatch(rows)
            params = (
                faiss.SearchParametersIVF(sel=selector, nprobe=probe) if probe else faiss.SearchParameters(sel=selector)
            )
        elif probe:
            params = faiss.SearchParametersIVF(nprobe=probe)
        k = max(1, min(k, self.rows))
        scores, found = index.search(vector, k, params=params) if params else index.search(vector, k)
        keep = found[0] >= 0
        return scores[0][keep], found[0][keep]


def open_index(workspace: Workspace | str | Path, embeddings_name: str) -> VectorIndex:
    """Open WS/indexes/NAME memory-mapped; a missing index is a one-line InputNotFound."""
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    folder = index_folder(workspace, embeddings_name)
    if not (folder / MANIFEST).exists():
        raise InputNotFound(
            f"no index of embeddings {embeddings_name!r} at {folder}; run `workbench index --workspace "
            f"{workspace.root} --embeddings {embeddings_name}`"
        )
    faiss = _faiss()
    manifest = read_json(folder / MANIFEST)
    indexes = {
        tower: faiss.read_index(str(folder / entry["file"]), faiss.IO_FLAG_MMAP_IFC)
        for tower, entry in manifest["towers"].items()
    }
    return VectorIndex(folder, manifest, indexes, np.load(folder / manifest["keys"], mmap_mode="r"))

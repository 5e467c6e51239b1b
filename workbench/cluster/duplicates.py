"""Near-duplicate groups from the catalog's 64-bit pHash (`image_phash`) and the image embeddings.

Two figures are linked when, by `rule`: `both` (default) pHash Hamming distance <= `phash_distance` AND cosine
>= `cosine`; `either` one of the two; `phash` or `cosine` alone. Linked figures form groups (connected
components); each member but the group's smallest key gets a row in WS/catalog/near_duplicates.parquet
(key, near_duplicate_of = that smallest key, phash_distance and cosine to it), so `near_duplicate_of IS NULL`
keeps one figure per group.

pHash candidates come from LSH bands: the 64 bits are cut into `phash_distance + 1` bands, and two hashes within
that distance agree exactly on at least one band (pigeonhole), so only figures sharing a band value are compared
(not O(n^2)). Cosine candidates (rules `cosine`, `either`) are each figure's `NEIGHBOURS` nearest neighbours by
exact blocked search: O(n^2 d) arithmetic, fine to a few hundred thousand figures.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.cluster.source import as_workspace, catalog_columns, load_embeddings, writing
from workbench.errors import UserError
from workbench.fileio import write_json_atomically, write_parquet_atomically
from workbench.workspace import Workspace

RULES = ("both", "either", "phash", "cosine")
NEIGHBOURS = 8
MAX_BUCKET = 5_000  # a band value shared by more figures (blank images) is compared only within its first 5000


@dataclass(frozen=True)
class NearDuplicateConfig:
    phash_distance: int = 6
    cosine: float = 0.97
    rule: str = "both"

    def __post_init__(self) -> None:
        if not 0 <= self.phash_distance <= 15:
            raise UserError(f"--phash-distance must be between 0 and 15, got {self.phash_distance}")
        if not -1.0 <= self.cosine <= 1.0:
            raise UserError(f"--cosine must be between -1 and 1, got {self.cosine}")
        if self.rule not in RULES:
            raise UserError(f"--rule must be one of {', '.join(RULES)}, got {self.rule!r}")


def near_duplicates_path(workspace: Workspace) -> Path:
    return workspace.catalog_dir / "near_duplicates.parquet"


def parse_phash(values: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """uint64 hashes and a validity mask from 16-hex-digit strings (None or malformed: invalid)."""
    hashes = np.zeros(len(values), np.uint64)
    valid = np.zeros(len(values), bool)
    for i, value in enumerate(values):
        with contextlib.suppress(TypeError, ValueError):
            hashes[i], valid[i] = np.uint64(int(value, 16)), True
    return hashes, valid


def _band_pairs(hashes: np.ndarray, valid: np.ndarray, distance: int) -> set[tuple[int, int]]:
    bands = distance + 1
    edges = np.linspace(0, 64, bands + 1).astype(int)
    index = np.flatnonzero(valid)
    pairs: set[tuple[int, int]] = set()
    for low, high in zip(edges[:-1], edges[1:], strict=False):
        mask = np.uint64((1 << (high - low)) - 1)
        values = (hashes[index] >> np.uint64(low)) & mask
        order = np.argsort(values, kind="stable")
        sorted_values = values[order]
        starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for start, end in zip(starts, ends, strict=False):
            if end - start < 2:
                continue
            members = index[order[start : min(end, start + MAX_BUCKET)]]
            first, second = np.triu_indices(len(members), 1)
            pairs.update(zip(members[first].tolist(), members[second].tolist(), strict=False))
    return pairs


def _neighbour_pairs(unit: np.ndarray, threshold: float, block: int = 4096) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    count = min(NEIGHBOURS + 1, len(unit))
    for start in range(0, len(unit), block):
        similarity = unit[start : start + block] @ unit.T
        nearest = np.argpartition(-similarity, count - 1, axis=1)[:, :count]
        for row, columns in enumerate(nearest):
            i = start + row
            for j in columns.tolist():
                if j != i and similarity[row, j] >= threshold:
                    pairs.add((min(i, j), max(i, j)))
    return pairs


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a ^ b).astype(np.int32)


def find_groups(
    keys: list[str], hashes: np.ndarray, valid: np.ndarray, unit: np.ndarray, config: NearDuplicateConfig
) -> list[tuple[int, int]]:
    """(member, representative) index pairs, representative = the smallest key of the member's group."""
    candidates: set[tuple[int, int]] = set()
    if config.rule != "cosine":
        candidates |= _band_pairs(hashes, valid, config.phash_distance)
    if config.rule in ("cosine", "either"):
        candidates |= _neighbour_pairs(unit, config.cosine)
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in sorted(candidates):
        close_hash = bool(valid[i] and valid[j]) and int(_hamming(hashes[i], hashes[j])) <= config.phash_distance
        close_vector = float(unit[i] @ unit[j]) >= config.cosine
        linked = {"both": close_hash and close_vector, "either": close_hash or close_vector}.get(
            config.rule, close_hash if config.rule == "phash" else close_vector
        )
        if linked:
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b, key=lambda x: keys[x])] = min(a, b, key=lambda x: keys[x])
    return [(i, root(i)) for i in range(len(keys)) if root(i) != i]


@dataclass(frozen=True)
class NearDuplicateReport:
    figures: int
    duplicates: int
    groups: int
    path: Path

    def describe(self) -> str:
        return f"near-duplicates: {self.duplicates} of {self.figures} figures in {self.groups} groups -> {self.path}"


def find_near_duplicates(
    workspace: Workspace | str | Path, embeddings_name: str, config: NearDuplicateConfig
) -> NearDuplicateReport:
    """Group near-duplicates of the embedded figures and write WS/catalog/near_duplicates.parquet."""
    import pyarrow as pa

    workspace = as_workspace(workspace)
    embeddings = load_embeddings(workspace, embeddings_name)
    vectors = embeddings.vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
    hashes, valid = parse_phash(catalog_columns(workspace, embeddings.keys, ("image_phash",))["image_phash"])
    members = sorted(find_groups(embeddings.keys, hashes, valid, unit, config), key=lambda p: embeddings.keys[p[0]])
    rows = np.array([m for m, _ in members], dtype=np.int64)
    reps = np.array([r for _, r in members], dtype=np.int64)
    both_valid = valid[rows] & valid[reps] if len(rows) else np.zeros(0, bool)
    distances = _hamming(hashes[rows], hashes[reps]) if len(rows) else np.zeros(0, np.int32)
    table = pa.table(
        {
            "key": pa.array([embeddings.keys[i] for i in rows], pa.string()),
            "near_duplicate_of": pa.array([embeddings.keys[i] for i in reps], pa.string()),
            "phash_distance": pa.array(distances, pa.int32(), mask=~both_valid),
            "cosine": pa.array((unit[rows] * unit[reps]).sum(axis=1) if len(rows) else [], pa.float32()),
        }
    )
    path = near_duplicates_path(workspace)
    with writing(workspace, "near-duplicates"):
        write_json_atomically({"embeddings": embeddings_name, **asdict(config)}, path.with_suffix(".json"))
        write_parquet_atomically(table, path)
    return NearDuplicateReport(len(embeddings.keys), len(rows), len(set(reps.tolist())), path)


def near_duplicate_pairs(workspace: Workspace | str | Path, limit: int = 50) -> list[dict[str, Any]]:
    """Pairs for side-by-side display: key and near_duplicate_of, their distances, captions and image offsets."""
    import pyarrow.parquet as pq

    workspace = as_workspace(workspace)
    path = near_duplicates_path(workspace)
    if not path.is_file():
        return []
    rows = pq.read_table(path).slice(0, limit).to_pylist()
    columns = ("caption", "shard", "jpg_offset", "jpg_size")
    left = catalog_columns(workspace, [row["key"] for row in rows], columns)
    right = catalog_columns(workspace, [row["near_duplicate_of"] for row in rows], columns)
    for i, row in enumerate(rows):
        row["left"] = {column: left[column][i] for column in columns}
        row["right"] = {column: right[column][i] for column in columns}
    return rows

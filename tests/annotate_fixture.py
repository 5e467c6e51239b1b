"""A real sample workspace with a clustering whose clusters follow the ground truth, for the annotation tests.

Cluster ids are the ground-truth concepts in sorted order (16 concepts -> ids 0..15), except that every fifth
figure of a concept goes to the next concept's cluster, so cluster labels propagate with known errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from explore_fixture import build_sample_workspace

CLUSTERING = "truth16"


@dataclass(frozen=True)
class TruthWorkspace:
    root: Path
    truth: dict[str, str]  # key -> ground-truth concept
    clusters: dict[str, int]  # key -> cluster id
    concepts: list[str]  # cluster id -> the concept it is mostly made of


def read_truth(mirror: Path) -> dict[str, str]:
    truth = {}
    for line in (mirror / "ground_truth.jsonl").read_text().splitlines():
        row = json.loads(line)
        truth[f"{row['pmcid']}_{row['figure_id']}_{row['graphic_index']}"] = row["concept"]
    return truth


def write_clustering(root: Path, name: str, clusters: dict[str, int]) -> None:
    folder = root / "catalog" / "clusters"
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(clusters)
    ids = [clusters[key] for key in keys]
    table = pa.table(
        {"key": keys, "cluster_id": pa.array(ids, pa.int32()), "distance": pa.array([0.0] * len(keys), pa.float32())}
    )
    pq.write_table(table, folder / f"{name}.parquet")
    sizes = {cid: ids.count(cid) for cid in sorted(set(ids))}
    rows = [
        {"cluster_id": cid, "size": size, "medoid_keys": [k for k in keys if clusters[k] == cid][:3], "name": str(cid)}
        for cid, size in sizes.items()
    ]
    schema = pa.schema(
        [
            ("cluster_id", pa.int32()),
            ("size", pa.int64()),
            ("medoid_keys", pa.list_(pa.string())),
            ("name", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema), folder / f"{name}.clusters.parquet")
    (folder / "current.json").write_text(json.dumps({"name": name}))


def build_truth_workspace(folder: Path, articles: int = 24, seed: int = 7) -> TruthWorkspace:
    root = build_sample_workspace(folder, articles=articles, seed=seed)
    truth = read_truth(folder / "mirror")
    concepts = sorted(set(truth.values()))
    clusters, seen = {}, {}
    for key in sorted(truth):
        concept = truth[key]
        seen[concept] = seen.get(concept, 0) + 1
        cid = concepts.index(concept)
        clusters[key] = (cid + 1) % len(concepts) if seen[concept] % 5 == 0 else cid
    write_clustering(root, CLUSTERING, clusters)
    return TruthWorkspace(root, truth, clusters, concepts)

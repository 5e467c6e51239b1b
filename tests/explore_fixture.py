"""A real workspace (sample mirror -> acquire -> extract) with the files `workbench embed`, `cluster` and `map`
write, made here from random numbers: random unit vectors as embeddings, random 2-D points as the map, k-means on
them as the clustering. Notebook 04 and the explore tests read only these files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.catalog import open_catalog
from workbench.cli import main


@dataclass(frozen=True)
class ExploreWorkspace:
    root: Path
    keys: list[str]
    map_name: str = "demo-map"
    clustering: str = "demo-k4"
    embeddings: str = "demo-emb"


def build_sample_workspace(folder: Path, articles: int = 16, seed: int = 5) -> Path:
    mirror, root = folder / "mirror", folder / "ws"
    assert main(["sample-mirror", str(mirror), "--articles", str(articles), "--seed", str(seed)]) == 0
    assert main(["acquire", "--source", str(mirror), "--workspace", str(root), "--no-progress"]) == 0
    assert main(["extract", "--workspace", str(root), "--workers", "0", "--no-progress"]) == 0
    return root


def write_explore_files(root: Path, k: int = 4, dim: int = 16, seed: int = 0) -> ExploreWorkspace:
    """Map, clustering (k-means on the map's points) and embeddings for every figure of the catalog."""
    with open_catalog(root, progress=False) as catalog:
        keys = [key for (key,) in catalog.execute("SELECT key FROM figures ORDER BY key").fetchall()]
    made = ExploreWorkspace(root, keys)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (k, 2))
    xy = (centres[rng.integers(0, k, len(keys))] + rng.normal(0, 1, (len(keys), 2))).astype(np.float32)
    write_map(root, made.map_name, keys, xy)
    write_clusters(root, made.clustering, keys, xy, k, seed)
    write_embeddings(root, made.embeddings, keys, rng.normal(size=(len(keys), dim)))
    return made


def write_map(root: Path, name: str, keys: list[str], xy: np.ndarray) -> Path:
    folder = root / "catalog" / "maps"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"key": keys, "x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32)})
    pq.write_table(table, folder / f"{name}.parquet")
    return folder / f"{name}.parquet"


def write_clusters(root: Path, name: str, keys: list[str], xy: np.ndarray, k: int, seed: int = 0) -> None:
    from sklearn.cluster import KMeans

    fitted = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(xy)
    labels = fitted.labels_.astype(np.int32)
    distance = np.linalg.norm(xy - fitted.cluster_centers_[labels], axis=1).astype(np.float32)
    folder = root / "catalog" / "clusters"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"key": keys, "cluster_id": labels, "distance": distance}), folder / f"{name}.parquet")
    rows = []
    for cluster in range(k):
        inside = np.flatnonzero(labels == cluster)
        medoids = [keys[i] for i in inside[np.argsort(distance[inside])][:3]]
        rows.append({"cluster_id": cluster, "size": len(inside), "medoid_keys": medoids, "name": f"group {cluster}"})
    table = pa.Table.from_pylist(
        rows,
        pa.schema(
            [
                ("cluster_id", pa.int32()),
                ("size", pa.int64()),
                ("medoid_keys", pa.list_(pa.string())),
                ("name", pa.string()),
            ]
        ),
    )
    pq.write_table(table, folder / f"{name}.clusters.parquet")
    (folder / "current.json").write_text(json.dumps({"name": name}))


def write_embeddings(root: Path, name: str, keys: list[str], vectors: np.ndarray, shard_rows: int = 50) -> Path:
    """The `workbench.embed.store` format: per shard keys, float16 unit vectors and a done marker; a card."""
    folder = root / "embeddings" / name
    folder.mkdir(parents=True, exist_ok=True)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for number, start in enumerate(range(0, len(keys), shard_rows)):
        shard = f"{number:06d}"
        (folder / f"{shard}.keys.txt").write_text("\n".join(keys[start : start + shard_rows]) + "\n")
        np.save(folder / f"{shard}.image.npy", vectors[start : start + shard_rows].astype(np.float16))
        (folder / f"{shard}.done.json").write_text(json.dumps({"rows": len(keys[start : start + shard_rows])}))
    card = {"spec": "random", "dims": {"image": vectors.shape[1]}, "counts": {"image": len(keys)}}
    (folder / "card.json").write_text(json.dumps(card))
    return folder

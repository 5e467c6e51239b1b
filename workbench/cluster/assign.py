"""Per-image cluster assignments and the cluster table, as Parquet under WS/catalog/clusters/.

    CLUSTERING.parquet           key, cluster_id int32, distance float32 (to the centroid, in PCA space)
    CLUSTERING.clusters.parquet  cluster_id, size, medoid_keys (the 5 nearest to the centroid), name
    current.json                 {"name": CLUSTERING}: the clustering the catalog's `cluster_id` column shows

`assign` puts images without an assignment into the saved clusters (no refit); existing rows stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.cluster.model import ClusterModel, load_model, model_identity
from workbench.cluster.naming import cluster_names
from workbench.cluster.source import CLUSTERS_DIR, Embeddings, as_workspace, check_name, load_embeddings, writing
from workbench.errors import UserError
from workbench.fileio import read_json, write_json_atomically, write_parquet_atomically
from workbench.workspace import Workspace

MEDOIDS = 5
CURRENT = "current.json"


def clusters_dir(workspace: Workspace) -> Path:
    return workspace.catalog_dir / CLUSTERS_DIR


def assignments_path(workspace: Workspace, name: str) -> Path:
    return clusters_dir(workspace) / f"{check_name('clustering', name)}.parquet"


def table_path(workspace: Workspace, name: str) -> Path:
    return clusters_dir(workspace) / f"{check_name('clustering', name)}.clusters.parquet"


def current_clustering(workspace: Workspace) -> str | None:
    """The name in WS/catalog/clusters/current.json whose assignments exist, else None."""
    data = read_json(clusters_dir(workspace) / CURRENT, default=dict)
    name = data.get("name") if isinstance(data, dict) else None
    return name if name and assignments_path(workspace, name).is_file() else None


def set_current(workspace: Workspace, name: str) -> None:
    write_json_atomically({"name": name}, clusters_dir(workspace) / CURRENT)


@dataclass(frozen=True)
class Assignments:
    keys: list[str]
    cluster_ids: np.ndarray  # int32
    distances: np.ndarray  # float32


def assign_all(model: ClusterModel, embeddings: Embeddings) -> Assignments:
    ids, distances = model.nearest(embeddings.vectors)
    return Assignments(list(embeddings.keys), ids, distances)


def write_assignments(workspace: Workspace, name: str, assignments: Assignments) -> None:
    import pyarrow as pa

    order = np.argsort(np.asarray(assignments.keys, dtype=object), kind="stable")
    table = pa.table(
        {
            "key": pa.array([assignments.keys[i] for i in order], pa.string()),
            "cluster_id": pa.array(assignments.cluster_ids[order], pa.int32()),
            "distance": pa.array(assignments.distances[order], pa.float32()),
        }
    )
    write_parquet_atomically(table, assignments_path(workspace, name))


def read_assignments(workspace: Workspace, name: str) -> Assignments:
    import pyarrow.parquet as pq

    path = assignments_path(workspace, name)
    if not path.is_file():
        return Assignments([], np.zeros(0, np.int32), np.zeros(0, np.float32))
    table = pq.read_table(path)
    return Assignments(
        table.column("key").to_pylist(),
        table.column("cluster_id").to_numpy().astype(np.int32),
        table.column("distance").to_numpy().astype(np.float32),
    )


def write_cluster_table(workspace: Workspace, name: str, assignments: Assignments, k: int) -> None:
    """Size, the MEDOIDS keys nearest each centroid and a provisional name (top caption terms) per cluster."""
    import pyarrow as pa

    ids, distances = assignments.cluster_ids, assignments.distances
    keys = np.asarray(assignments.keys, dtype=object)
    order = np.lexsort((keys, distances, ids))  # by cluster, then distance, then key
    sizes = np.bincount(ids, minlength=k)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    medoids = [
        keys[order[start : start + min(size, MEDOIDS)]].tolist() for start, size in zip(starts, sizes, strict=False)
    ]
    names = cluster_names(workspace, assignments.keys, ids, k)
    table = pa.table(
        {
            "cluster_id": pa.array(np.arange(k), pa.int32()),
            "size": pa.array(sizes, pa.int64()),
            "medoid_keys": pa.array(medoids, pa.list_(pa.string())),
            "name": pa.array(names, pa.string()),
        }
    )
    write_parquet_atomically(table, table_path(workspace, name))


@dataclass(frozen=True)
class AssignReport:
    name: str
    added: int
    kept: int

    def describe(self) -> str:
        return f"clustering {self.name}: {self.added} new images assigned, {self.kept} kept as they were"


def assign_new(workspace: Workspace | str | Path, name: str, embeddings_name: str) -> AssignReport:
    """Assign the images of `embeddings_name` that clustering `name` has not seen, with its saved model."""
    workspace = as_workspace(workspace)
    model, card = load_model(workspace, name)
    embeddings = load_embeddings(workspace, embeddings_name)
    if embeddings.dim != model.mean.shape[0]:
        raise UserError(
            f"embeddings {embeddings_name!r} have dimension {embeddings.dim}; clustering {name!r} was fitted on "
            f"dimension {model.mean.shape[0]}"
        )
    identity = model_identity(read_json(embeddings.folder / "card.json"))
    fitted = card.get("embeddings_model", {})
    differing = sorted(field for field in set(identity) & set(fitted) if identity[field] != fitted[field])
    if differing:
        raise UserError(
            f"embeddings {embeddings_name!r} come from another model than clustering {name!r} was fitted on "
            f"(differs: {', '.join(differing)})"
        )
    with writing(workspace, f"clustering {name}"):
        old = read_assignments(workspace, name)
        fresh = _merge_new(workspace, name, model, embeddings, old)
    return AssignReport(name, fresh, len(old.keys))


def _merge_new(workspace: Workspace, name: str, model: ClusterModel, embeddings: Embeddings, old: Assignments) -> int:
    seen = set(old.keys)
    fresh = [i for i, key in enumerate(embeddings.keys) if key not in seen]
    if fresh:
        ids, distances = model.nearest(embeddings.vectors[fresh])
        merged = Assignments(
            old.keys + [embeddings.keys[i] for i in fresh],
            np.concatenate([old.cluster_ids, ids]),
            np.concatenate([old.distances, distances]),
        )
        write_assignments(workspace, name, merged)
        write_cluster_table(workspace, name, merged, model.k)
    return len(fresh)

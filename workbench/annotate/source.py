"""`ClusterSource`: the annotation widget's only access to clusters and figures.

It reads the clustering's fixed files once (WS/catalog/clusters/NAME.parquet: key, cluster_id, distance, and
NAME.clusters.parquet: cluster_id, size, medoid_keys, name; the same files the embedding map reads through
`workbench.explore.data`), keeps each cluster's members ordered nearest the centre first, and gets thumbnails and
captions through `CatalogStore` (shard offsets, as the filter panel and the map do). Centroids for suggestions come
from the fitted model (WS/models/clusterings/NAME/model.npz) when there is one, else from an embedding set.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from workbench.catalog.db import Catalog
from workbench.catalog.filters import FigureFilter
from workbench.catalog.store import CatalogStore, PreviewItem
from workbench.embed.store import EmbeddingSet
from workbench.errors import InputNotFound
from workbench.explore.data import clusters_folder, current_clustering

ENLARGED_PX = 480


class ClusterSource:
    """Clusters (largest first), their members, preview items and centroids of one clustering."""

    def __init__(self, catalog: Catalog, clustering: str = "", thumbnail_px: int = 128) -> None:
        self.root = catalog.workspace.root
        self.workspace = catalog.workspace
        self.clustering = clustering or current_clustering(self.root)
        folder = clusters_folder(self.root)
        if not self.clustering or not (folder / f"{self.clustering}.parquet").is_file():
            raise InputNotFound(
                f"clustering {self.clustering or '(current)'!r} not found under {folder}: run `workbench cluster fit`"
            )
        self.store = CatalogStore(catalog, thumbnail_px)
        self._large: CatalogStore | None = None
        self._catalog = catalog
        table = pq.read_table(folder / f"{self.clustering}.parquet", columns=["key", "cluster_id", "distance"])
        ids = table["cluster_id"].to_numpy().astype(np.int64)
        order = np.lexsort((table["distance"].to_numpy(), ids))
        keys = np.asarray(table["key"].to_pylist(), dtype=object)[order]
        ids = ids[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(ids)]
        self._members = {int(ids[s]): keys[s:e] for s, e in zip(starts, ends, strict=True)}
        self._keys, self._ids = keys, ids
        self.table = self._cluster_table(folder / f"{self.clustering}.clusters.parquet")

    def _cluster_table(self, path) -> list[dict]:
        if path.is_file():
            rows = pq.read_table(path, columns=["cluster_id", "size", "name"]).to_pylist()
        else:
            rows = [{"cluster_id": cid, "size": len(keys), "name": ""} for cid, keys in self._members.items()]
        rows = [{**row, "cluster_id": int(row["cluster_id"]), "size": int(row["size"])} for row in rows]
        return sorted(rows, key=lambda row: (-row["size"], row["cluster_id"]))

    def sizes(self) -> dict[int, int]:
        return {row["cluster_id"]: row["size"] for row in self.table}

    def name(self, cluster_id: int) -> str:
        return next((row.get("name") or "" for row in self.table if row["cluster_id"] == cluster_id), "")

    def members(self, cluster_id: int, limit: int | None = None) -> list[str]:
        """Keys of a cluster nearest its centre first (all, or the first `limit`)."""
        keys = self._members.get(int(cluster_id), np.zeros(0, dtype=object))
        return [str(key) for key in (keys if limit is None else keys[:limit])]

    def items(self, keys: list[str]) -> list[PreviewItem]:
        """Thumbnails and captions of `keys`, in that order (keys the catalog lacks are left out)."""
        if not keys:
            return []
        found = {item.key: item for item in self.store.preview(FigureFilter(keys=tuple(keys)), len(keys))}
        return [found[key] for key in keys if key in found]

    def enlarged(self, key: str) -> PreviewItem | None:
        """One figure at `ENLARGED_PX` for the enlarged view."""
        if self._large is None:
            self._large = CatalogStore(self._catalog, ENLARGED_PX)
        found = self._large.preview(FigureFilter(keys=(key,)), 1)
        return found[0] if found else None

    def centroids(self, embeddings: str = "") -> tuple[np.ndarray, np.ndarray] | None:
        """(cluster ids, unit centroid rows): the fitted model's centroids, else member means of `embeddings`."""
        model = self.root / "models" / "clusterings" / self.clustering / "model.npz"
        if model.is_file():
            with np.load(model) as saved:
                if "centroids" in saved:
                    centroids = np.asarray(saved["centroids"], dtype=np.float64)
                    return np.arange(len(centroids)), _unit(centroids)
        if not embeddings:
            return None
        keys, vectors = EmbeddingSet.of(self.workspace, embeddings).load()
        where = {key: i for i, key in enumerate(keys)}
        ids, rows = [], []
        for cluster_id, members in self._members.items():
            inside = [where[key] for key in members if key in where]
            if inside:
                ids.append(cluster_id)
                rows.append(np.asarray(vectors[inside], dtype=np.float64).mean(axis=0))
        if not rows:
            return None
        return np.asarray(ids), _unit(np.vstack(rows))

    def close(self) -> None:
        self.store.close()
        if self._large is not None:
            self._large.close()


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

"""`ExploreStore`: the map's only access to data (points joined to the catalog, clusters, embeddings, thumbnails).

It reads the fixed outputs of `workbench map` and `workbench cluster`:

    WS/catalog/maps/NAME.parquet                       key, x float32, y float32
    WS/catalog/clusters/CLUSTERING.parquet             key, cluster_id int32, distance float32
    WS/catalog/clusters/CLUSTERING.clusters.parquet    cluster_id, size, medoid_keys list<string>, name string
    WS/catalog/clusters/current.json                   {"name": CLUSTERING}

and the embeddings of `workbench embed` (`workbench.embed.store.EmbeddingSet`). Thumbnails, captions and subsets go
through a `CatalogStore`, the filter panel's own data access, so both read the catalog the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from workbench.catalog.db import Catalog
from workbench.catalog.filters import FigureFilter
from workbench.catalog.live_labels import FACTS_WITH_CONCEPT
from workbench.catalog.store import CatalogStore, PreviewItem
from workbench.embed.store import EmbeddingSet
from workbench.errors import InputNotFound, UserError
from workbench.fileio import read_json

UNKNOWN = "unknown"
POINT_COLUMNS = "key, pmcid, caption, license_group, article_year, article_journal, concept"
FIGURE_FACTS = FACTS_WITH_CONCEPT  # concept: the first global concept of the current annotation label
COLOUR_COLUMNS = {  # colour_by choice -> column of `MapPoints.facts`
    "cluster": "cluster",
    "licence group": "license_group",
    "year": "article_year",
    "journal": "article_journal",
    "concept": "concept",
}


@dataclass(frozen=True)
class MapPoints:
    """The points of a map with what the map shows about each (all arrays in the same order)."""

    keys: np.ndarray  # str objects
    x: np.ndarray  # float32
    y: np.ndarray  # float32
    facts: dict[str, np.ndarray]  # pmcid, caption, license_group, article_year, article_journal, concept, cluster
    total: int  # points in the map file (more than len(keys) when subsampled for display)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def subsampled(self) -> bool:
        return len(self.keys) < self.total


def maps_folder(root: Path) -> Path:
    return root / "catalog" / "maps"


def clusters_folder(root: Path) -> Path:
    return root / "catalog" / "clusters"


def current_clustering(root: Path) -> str:
    """The clustering `current.json` names, or "" when there is none."""
    path = clusters_folder(root) / "current.json"
    return str(read_json(path).get("name", "")) if path.is_file() else ""


class ExploreStore:
    """Answers the map's questions; thumbnails, previews and subsets through `CatalogStore`."""

    def __init__(self, catalog: Catalog, map_name: str, clustering: str = "", embeddings: str = "") -> None:
        self.catalog_store = CatalogStore(catalog)
        self.root = catalog.workspace.root
        self.map_name = map_name
        self.clustering = clustering or current_clustering(self.root)
        self.embeddings = embeddings
        self._vectors: tuple[list[str], np.ndarray] | None = None
        path = maps_folder(self.root) / f"{map_name}.parquet"
        if not path.is_file():
            raise InputNotFound(f"map {path} does not exist: run `workbench map --workspace WS --embeddings NAME`")
        self.map_path = path

    def points(self, max_points: int = 100_000, seed: int = 0) -> MapPoints:
        """The map's points joined by key to the catalog and the clustering; a random `max_points` when larger."""
        table = pq.read_table(self.map_path, columns=["key", "x", "y"])
        keys = np.asarray(table["key"].to_pylist(), dtype=object)
        x = table["x"].to_numpy().astype(np.float32)
        y = table["y"].to_numpy().astype(np.float32)
        total = len(keys)
        if total > max_points:
            chosen = np.sort(np.random.default_rng(seed).choice(total, max_points, replace=False))
            keys, x, y = keys[chosen], x[chosen], y[chosen]
        rows = self.catalog_store.rows(FIGURE_FACTS, [keys.tolist()])
        by_key = {row[0]: row[1:] for row in rows}
        missing = (None,) * 6
        joined = [by_key.get(key, missing) for key in keys]
        names = POINT_COLUMNS.split(", ")[1:]
        facts = {name: np.asarray([_text(row[i]) for row in joined], dtype=object) for i, name in enumerate(names)}
        facts["cluster"] = self._cluster_labels(keys)
        return MapPoints(keys, x, y, facts, total)

    def example_key(self) -> str:
        """A figure to start from: the first medoid of the largest cluster, else the map's first key."""
        for row in self.clusters():
            if row.get("medoid_keys"):
                return str(row["medoid_keys"][0])
        return str(pq.read_table(self.map_path, columns=["key"])["key"][0])

    def clusters(self) -> list[dict]:
        """The cluster table (cluster_id, size, medoid_keys, name), largest first; [] without a clustering."""
        path = clusters_folder(self.root) / f"{self.clustering}.clusters.parquet"
        if not self.clustering or not path.is_file():
            return []
        rows = pq.read_table(path).to_pylist()
        return sorted(rows, key=lambda row: (-int(row["size"]), int(row["cluster_id"])))

    def cluster_members(self, cluster_id: int, limit: int = 20) -> list[str]:
        """Up to `limit` keys of a cluster, nearest its centre first (medoids lead)."""
        path = clusters_folder(self.root) / f"{self.clustering}.parquet"
        table = pq.read_table(path, columns=["key", "cluster_id", "distance"])
        ids = table["cluster_id"].to_numpy()
        inside = np.flatnonzero(ids == cluster_id)
        distances = table["distance"].to_numpy()[inside]
        keys = np.asarray(table["key"].to_pylist(), dtype=object)[inside]
        return [str(key) for key in keys[np.argsort(distances, kind="stable")][:limit]]

    def _cluster_labels(self, keys: np.ndarray) -> np.ndarray:
        path = clusters_folder(self.root) / f"{self.clustering}.parquet"
        if not self.clustering or not path.is_file():
            return np.full(len(keys), UNKNOWN, dtype=object)
        table = pq.read_table(path, columns=["key", "cluster_id"])
        names = {int(row["cluster_id"]): row.get("name") or "" for row in self.clusters()}
        label = {
            key: _cluster_label(int(cid), names.get(int(cid), ""))
            for key, cid in zip(table["key"].to_pylist(), table["cluster_id"].to_pylist(), strict=True)
        }
        return np.asarray([label.get(key, UNKNOWN) for key in keys], dtype=object)

    def items(self, keys: list[str]) -> list[PreviewItem]:
        """Preview items (thumbnail, caption, PMCID, link) of `keys`, in that order (unknown keys left out)."""
        if not keys:
            return []
        found = {item.key: item for item in self.catalog_store.preview(FigureFilter(keys=tuple(keys)), len(keys))}
        return [found[key] for key in keys if key in found]

    def neighbours(self, key: str, count: int = 12) -> list[tuple[PreviewItem, float]]:
        """The `count` figures nearest `key` by cosine similarity of their embeddings, nearest first."""
        keys, vectors = self._embedding_vectors()
        where = {k: i for i, k in enumerate(keys)}
        if key not in where:
            raise UserError(f"figure {key!r} has no embedding in {self.embeddings!r}")
        scores = vectors @ vectors[where[key]]
        scores[where[key]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:count]
        items = {item.key: item for item in self.items([keys[i] for i in top])}
        return [(items[keys[i]], float(scores[i])) for i in top if keys[i] in items]

    def _embedding_vectors(self) -> tuple[list[str], np.ndarray]:
        if self._vectors is None:
            if not self.embeddings:
                raise UserError("nearest neighbours need an embedding set: pass embeddings=NAME")
            embedding_set = EmbeddingSet.of(self.catalog_store.catalog.workspace, self.embeddings)
            if not embedding_set.folder.is_dir():
                raise InputNotFound(f"embedding set {embedding_set.folder} does not exist")
            keys, vectors = embedding_set.load()
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self._vectors = (keys, vectors / np.maximum(norms, 1e-12))
        return self._vectors

    def close(self) -> None:
        self.catalog_store.close()


def _cluster_label(cluster_id: int, name: str) -> str:
    return f"{cluster_id}: {name}" if name else str(cluster_id)


def _text(value: object) -> str:
    return UNKNOWN if value is None or value == "" else str(value)

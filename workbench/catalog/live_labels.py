"""Annotation labels joined at query time: a label event reaches filters, the `annotations` view and subsets
without any refresh.

Before each query a `Catalog` asks `LiveLabels.current()`: one cheap look at the store's fingerprint
(WS/state/annotations.sqlite: event count, last id, settings); when it moved, only the new events are derived
(`workbench.annotate.derive.Deriver`). Filters (`--concept`, `--panel-type`) compile to bound constants over
`figures.cluster_id` and `figures.key` (the matching cluster ids of the catalog's current clustering, plus the
per-image overrides that enter or leave), so a filtered count stays a column scan. The reader connection also
holds two small temp tables (cluster_id -> label, key -> override), reloaded when the labels change, behind the
temp view `annotations` (one row per labelled figure) and the five BIOMEDICA fields of `selected_rows`.

`--concept` matches a global concept or a local concept (either list, compared without case; names of the two
levels do not collide in BIOMEDICA's taxonomy); `--panel-type` matches the panel type or the panel subtype.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import duckdb
import pyarrow as pa

from workbench.annotate.derive import CurrentLabels, Deriver
from workbench.annotate.events import LabelStore
from workbench.annotate.targets import cluster_ids
from workbench.cluster.assign import CURRENT, clusters_dir, current_clustering, table_path
from workbench.workspace import Workspace

LABEL_FIELDS = (  # BIOMEDICA's per-image fields, as subsets write them into each sample's .json
    "image_label_id",
    "image_primary_label",
    "image_secondary_label",
    "image_panel_type",
    "image_panel_subtype",
)
_LABEL_COLUMNS = [
    ("global_concepts", pa.list_(pa.string())),
    ("local_concepts", pa.list_(pa.string())),
    ("panel_type", pa.string()),
    ("panel_subtype", pa.string()),
]
# Each figure's cluster id is the column `figures.cluster_id` (the cache folds the current clustering in).
MEMBERSHIP = "SELECT key, cluster_id FROM figures"
CLUSTER_MATCH = "cluster_id IN ({ids})"  # a WHERE fragment over `figures`: in one of `{ids}` (a run of ?)
_SQL = {
    "membership": f"CREATE OR REPLACE TEMP VIEW wb_membership AS {MEMBERSHIP}",
    "clusters": "CREATE OR REPLACE TEMP TABLE wb_cluster_labels AS SELECT * FROM wb_cluster_labels_arrow",
    "images": "CREATE OR REPLACE TEMP TABLE wb_image_labels AS SELECT * FROM wb_image_labels_arrow",
}


def _join(alias: str) -> str:
    """The joins that give each row of `alias` its cluster (membership), its own label and its cluster's label."""
    return f"""
LEFT JOIN temp.main.wb_membership AS membership ON membership.key = {alias}.key
LEFT JOIN temp.main.wb_image_labels AS image_label ON image_label.key = {alias}.key
LEFT JOIN temp.main.wb_cluster_labels AS cluster_label ON cluster_label.cluster_id = membership.cluster_id"""


LABEL_VALUE = {  # a label field of the current label: the image's own, else its cluster's
    name: f"CASE WHEN image_label.key IS NULL THEN cluster_label.{name} ELSE image_label.{name} END"
    for name in ("global_concepts", "local_concepts", "panel_type", "panel_subtype")
}
_LABEL_ID = "CASE WHEN image_label.key IS NULL THEN cluster_label.cluster_id END"
ANNOTATIONS_VIEW = f"""
CREATE OR REPLACE TEMP VIEW annotations AS
SELECT figures.key, membership.cluster_id,
       CASE WHEN image_label.key IS NULL THEN 'cluster' ELSE 'image' END AS label_source,
       {_LABEL_ID} AS label_id,
       {LABEL_VALUE["global_concepts"]} AS global_concepts,
       {LABEL_VALUE["local_concepts"]} AS local_concepts,
       {LABEL_VALUE["panel_type"]} AS panel_type,
       {LABEL_VALUE["panel_subtype"]} AS panel_subtype
FROM figures{_join("figures")}
WHERE image_label.key IS NOT NULL OR cluster_label.cluster_id IS NOT NULL"""
# Every selected row of `figures` (filter `{{where}}`) with the five BIOMEDICA label fields, in key order.
SELECTED_ROWS_LABELLED = f"""
SELECT selected.*,
       {_LABEL_ID} AS image_label_id,
       {LABEL_VALUE["global_concepts"]} AS image_primary_label,
       {LABEL_VALUE["local_concepts"]} AS image_secondary_label,
       {LABEL_VALUE["panel_type"]} AS image_panel_type,
       {LABEL_VALUE["panel_subtype"]} AS image_panel_subtype
FROM (SELECT * FROM figures WHERE {{where}}) AS selected{_join("selected")}
ORDER BY selected.key"""
# The selected figures (`{where}` over `figures`) joined with their current labels; `{columns}` from LABEL_VALUE.
_LABELLED = (
    """(
SELECT {columns}
FROM (SELECT key FROM figures WHERE {{where}}) AS selected"""
    + _join("selected").replace("{", "{{").replace("}", "}}")
    + ")"
)
# Statistics over the current labels (`stats.count_by`): the primary (first global) concept, the panel type, and
# every global and local concept of a label.
COUNT_BY_LABEL = {
    "concept": "SELECT value, count(*) AS figures FROM "
    + _LABELLED.format(columns=f"({LABEL_VALUE['global_concepts']})[1] AS value")
    + " GROUP BY ALL ORDER BY figures DESC, value NULLS LAST LIMIT ?",
    "panel_type": "SELECT value, count(*) AS figures FROM "
    + _LABELLED.format(columns=f"{LABEL_VALUE['panel_type']} AS value")
    + " GROUP BY ALL ORDER BY figures DESC, value NULLS LAST LIMIT ?",
    "concepts": "SELECT value, count(*) AS figures FROM (SELECT unnest(list_concat(globals, locals)) AS value FROM "
    + _LABELLED.format(
        columns=f"{LABEL_VALUE['global_concepts']} AS globals, {LABEL_VALUE['local_concepts']} AS locals"
    )
    + ") GROUP BY ALL ORDER BY figures DESC, value LIMIT ?",
}
# Per-figure facts with the primary concept (the embedding map's hover and colours): keys bound as one list.
FACTS_WITH_CONCEPT = f"""
SELECT selected.key, selected.pmcid, left(selected.caption, 200), selected.license_group, selected.article_year,
       selected.article_journal, ({LABEL_VALUE["global_concepts"]})[1] AS concept
FROM (SELECT * FROM figures WHERE key IN (SELECT unnest(?::VARCHAR[]))) AS selected{_join("selected")}"""


SMALL_LIST = 64  # up to this many keys are bound as constants (`key IN (?, ...)`), more as one list parameter
OVERRIDE_CLUSTERS = "SELECT key, cluster_id FROM temp.main.wb_membership WHERE key IN (SELECT unnest(?::VARCHAR[]))"
CLUSTER_COMPLEMENT = "cluster_id NOT IN ({ids})"  # in a cluster of the clustering, but not in one of `{ids}`
ANY_CLUSTER = "cluster_id IS NOT NULL"


@dataclass(frozen=True)
class LabelClause:
    """What a label filter compiles to: cluster ids whose label matches, and override keys entering/leaving.

    `all_clusters` (the clustering's ids, when known) lets a filter matching most clusters name the few others.
    """

    cluster_ids: tuple[int, ...]
    keys_in: tuple[str, ...]
    keys_out: tuple[str, ...]
    all_clusters: frozenset[int] = frozenset()

    def narrowed(self, clusters_of: Mapping[str, int | None]) -> LabelClause:
        """Only the overrides that change the answer: matching images outside matching clusters, and images
        of matching clusters whose own label does not match (`clusters_of`: each override key's cluster)."""
        matched = set(self.cluster_ids)
        keys_in = tuple(key for key in self.keys_in if clusters_of.get(key) not in matched)
        keys_out = tuple(key for key in self.keys_out if clusters_of.get(key) in matched)
        return replace(self, keys_in=keys_in, keys_out=keys_out)

    def sql(self) -> tuple[str, tuple]:
        """A WHERE fragment over `figures` and its parameters."""
        parts: list[str] = []
        params: list = []
        if self.cluster_ids:
            others = sorted(self.all_clusters - set(self.cluster_ids))
            if self.all_clusters and set(self.cluster_ids) >= self.all_clusters:
                clause = ANY_CLUSTER
            elif self.all_clusters and len(others) < len(self.cluster_ids):
                clause = CLUSTER_COMPLEMENT.format(ids=", ".join("?" for _ in others))
                params.extend(others)
            else:
                clause = CLUSTER_MATCH.format(ids=", ".join("?" for _ in self.cluster_ids))
                params.extend(self.cluster_ids)
            if self.keys_out:
                keys, values = _keys(self.keys_out)
                clause = f"({clause} AND NOT ({keys}))"
                params.extend(values)
            parts.append(clause)
        if self.keys_in:
            keys, values = _keys(self.keys_in)
            parts.append(keys)
            params.extend(values)
        return (" OR ".join(parts) or "FALSE"), tuple(params)


def _keys(keys: tuple[str, ...]) -> tuple[str, list]:
    if len(keys) <= SMALL_LIST:
        return f"key IN ({', '.join('?' for _ in keys)})", list(keys)
    return "key IN (SELECT unnest(?::VARCHAR[]))", [list(keys)]


class LiveLabels:
    """The current derived labels of a workspace's current clustering, followed event by event."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.store = LabelStore(workspace)
        self._deriver: Deriver | None = None
        self._seen: tuple[str, str] | None = None  # (clustering, fingerprint) of `_labels`
        self._quick: tuple | None = None  # (current.json identity, store data_version) of `_labels`
        self._labels: CurrentLabels | None = None
        self._clustering: tuple[tuple | None, str] = (None, "")
        self._watch: sqlite3.Connection | None = None
        self._watch_inode = 0
        self._ids: tuple[tuple | None, frozenset[int]] = (None, frozenset())
        self._clauses: dict[tuple, LabelClause] = {}  # of the current labels, by (concepts, panel types)

    def _current_clustering(self) -> tuple[tuple | None, str]:
        """The current clustering's name, re-read only when current.json changed."""
        path = clusters_dir(self.workspace) / CURRENT
        try:
            stat = path.stat()
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            identity = None
        if identity != self._clustering[0] or identity is None:
            self._clustering = (identity, current_clustering(self.workspace) or "")
        return self._clustering

    def _data_version(self) -> tuple[int, int] | None:
        """SQLite's data_version of the store on a connection kept open: it moves whenever another connection
        commits, so an unchanged value means no new event or setting (no query of the tables needed)."""
        path = self.store.path
        try:
            inode = path.stat().st_ino
        except FileNotFoundError:
            return None
        if self._watch is None or inode != self._watch_inode:
            if self._watch is not None:
                self._watch.close()
            self._watch = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            self._watch_inode = inode
        return inode, self._watch.execute("PRAGMA data_version").fetchone()[0]

    def current(self) -> CurrentLabels:
        """The labels as of now (re-derived only from events newer than the last look)."""
        identity, clustering = self._current_clustering()
        quick = (identity, clustering, self._data_version())
        if self._labels is not None and quick == self._quick and quick[2] is not None:
            return self._labels
        fingerprint = self.store.fingerprint()
        if self._labels is not None and self._seen == (clustering, fingerprint):
            self._quick = quick
            return self._labels
        count, last, settings = fingerprint.split(":", 2)
        policy = dict(item.split("=", 1) for item in settings.split(",") if "=" in item).get("contested", "wait")
        deriver = self._deriver
        if (
            deriver is None
            or deriver.clustering != clustering
            or deriver.contested != policy
            or int(last) < deriver.last_id
        ):
            deriver = Deriver(clustering, policy)
        deriver.apply(self.store.events(after=deriver.last_id))
        self._deriver, self._seen, self._quick = deriver, (clustering, fingerprint), quick
        self._labels = deriver.result(f"{clustering}|{fingerprint}")
        return self._labels

    def state(self) -> str:
        """What a subset manifest records: the clustering and the store fingerprint the labels came from."""
        labels = self.current()
        return labels.fingerprint

    def clause(self, concepts: Sequence[str], panel_types: Sequence[str]) -> LabelClause:
        """What a label filter selects under the current labels (kept until the labels change)."""
        labels = self.current()
        key = (labels.fingerprint, tuple(concepts), tuple(panel_types))
        if key not in self._clauses:
            if any(seen[0] != labels.fingerprint for seen in self._clauses):
                self._clauses.clear()
            selection = labels.selection(concepts, panel_types)
            self._clauses[key] = LabelClause(*selection, self._all_clusters(labels.clustering))
        return self._clauses[key]

    def _all_clusters(self, clustering: str) -> frozenset[int]:
        """The cluster ids of the clustering (its cluster table), re-read only when that file changed."""
        path = table_path(self.workspace, clustering) if clustering else None
        try:
            stat = path.stat() if path else None
        except FileNotFoundError:
            stat = None
        identity = (clustering, stat.st_ino, stat.st_mtime_ns) if stat else None
        if identity != self._ids[0]:
            ids = cluster_ids(self.workspace, clustering) if identity else None
            self._ids = (identity, frozenset(ids or ()))
        return self._ids[1]


def load_tables(connection: duckdb.DuckDBPyConnection, labels: CurrentLabels) -> None:
    """(Re)create the temp tables and views (membership, `annotations`) of a reader connection from `labels`."""
    connection.execute(_SQL["membership"])
    clusters = pa.table(
        {"cluster_id": pa.array(list(labels.clusters), pa.int32()), **_columns(labels.clusters.values())}
    )
    images = pa.table({"key": pa.array(list(labels.images), pa.string()), **_columns(labels.images.values())})
    for name, table, statement in (
        ("wb_cluster_labels_arrow", clusters, _SQL["clusters"]),
        ("wb_image_labels_arrow", images, _SQL["images"]),
    ):
        connection.register(name, table)
        try:
            connection.execute(statement)
        finally:
            connection.unregister(name)
    connection.execute(ANNOTATIONS_VIEW)


def _columns(labels: object) -> dict[str, pa.Array]:
    labels = list(labels)
    return {name: pa.array([_value(getattr(label, name)) for label in labels], kind) for name, kind in _LABEL_COLUMNS}


def _value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value

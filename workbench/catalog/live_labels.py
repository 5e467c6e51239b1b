"""Annotation labels joined at query time: a label event reaches filters, the `annotations` view and subsets
without any refresh.

Before each query a `Catalog` asks `LiveLabels.current()`: one cheap look at the store's fingerprint
(WS/state/annotations.sqlite: event count, last id, settings); when it moved, only the new events are derived
(`workbench.annotate.derive.Deriver`). Filters (`--concept`, `--panel-type`) compile to bound constants over
`figures.cluster_id` and `figures.key` (the matching cluster ids of the catalog's current clustering, plus the
per-image overrides that enter or leave), so a filtered count stays a column scan. The reader connection also
holds two small temp tables (cluster_id -> label, key -> override), reloaded when the labels change, behind the
temp view `annotations` (one row per labelled figure) and the five BIOMEDICA fields of `selected_rows`.

`--concept` matches a global concept or a local concept by its exact taxonomy spelling (either list; names of the
two levels do not collide in BIOMEDICA's taxonomy); `--panel-type` matches the panel type or the panel subtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from workbench.annotate.derive import CurrentLabels, Deriver
from workbench.annotate.events import LabelStore
from workbench.cluster.assign import current_clustering
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
_SQL = {
    "clusters": "CREATE OR REPLACE TEMP TABLE wb_cluster_labels AS SELECT * FROM wb_cluster_labels_arrow",
    "images": "CREATE OR REPLACE TEMP TABLE wb_image_labels AS SELECT * FROM wb_image_labels_arrow",
    "view": """
CREATE OR REPLACE TEMP VIEW annotations AS
SELECT figures.key, figures.cluster_id,
       CASE WHEN image_label.key IS NULL THEN 'cluster' ELSE 'image' END AS label_source,
       CASE WHEN image_label.key IS NULL THEN cluster_label.cluster_id END AS label_id,
       CASE WHEN image_label.key IS NULL THEN cluster_label.global_concepts ELSE image_label.global_concepts END
           AS global_concepts,
       CASE WHEN image_label.key IS NULL THEN cluster_label.local_concepts ELSE image_label.local_concepts END
           AS local_concepts,
       CASE WHEN image_label.key IS NULL THEN cluster_label.panel_type ELSE image_label.panel_type END AS panel_type,
       CASE WHEN image_label.key IS NULL THEN cluster_label.panel_subtype ELSE image_label.panel_subtype END
           AS panel_subtype
FROM figures
LEFT JOIN temp.main.wb_image_labels AS image_label ON image_label.key = figures.key
LEFT JOIN temp.main.wb_cluster_labels AS cluster_label ON cluster_label.cluster_id = figures.cluster_id
WHERE image_label.key IS NOT NULL OR cluster_label.cluster_id IS NOT NULL""",
}
# Every selected row of `figures` (filter `{where}`) with the five BIOMEDICA label fields, in key order.
SELECTED_ROWS_LABELLED = """
SELECT selected.*,
       CASE WHEN image_label.key IS NULL THEN cluster_label.cluster_id END AS image_label_id,
       CASE WHEN image_label.key IS NULL THEN cluster_label.global_concepts ELSE image_label.global_concepts END
           AS image_primary_label,
       CASE WHEN image_label.key IS NULL THEN cluster_label.local_concepts ELSE image_label.local_concepts END
           AS image_secondary_label,
       CASE WHEN image_label.key IS NULL THEN cluster_label.panel_type ELSE image_label.panel_type END
           AS image_panel_type,
       CASE WHEN image_label.key IS NULL THEN cluster_label.panel_subtype ELSE image_label.panel_subtype END
           AS image_panel_subtype
FROM (SELECT * FROM figures WHERE {where}) AS selected
LEFT JOIN temp.main.wb_image_labels AS image_label ON image_label.key = selected.key
LEFT JOIN temp.main.wb_cluster_labels AS cluster_label ON cluster_label.cluster_id = selected.cluster_id
ORDER BY selected.key"""


@dataclass(frozen=True)
class LabelClause:
    """What a label filter compiles to: cluster ids whose label matches, and override keys entering/leaving."""

    cluster_ids: tuple[int, ...]
    keys_in: tuple[str, ...]
    keys_out: tuple[str, ...]

    def sql(self) -> tuple[str, tuple]:
        """A WHERE fragment over `figures` (cluster_id, key) and its parameters."""
        parts, params = [], []
        if self.cluster_ids:
            clause = f"cluster_id IN ({', '.join('?' for _ in self.cluster_ids)})"
            params.extend(self.cluster_ids)
            if self.keys_out:
                clause = f"({clause} AND key NOT IN (SELECT unnest(?::VARCHAR[])))"
                params.append(list(self.keys_out))
            parts.append(clause)
        if self.keys_in:
            parts.append("key IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(self.keys_in))
        return (" OR ".join(parts) or "FALSE"), tuple(params)


class LiveLabels:
    """The current derived labels of a workspace's current clustering, followed event by event."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.store = LabelStore(workspace)
        self._deriver: Deriver | None = None
        self._seen: tuple[str, str] | None = None  # (clustering, fingerprint) of `_labels`
        self._labels: CurrentLabels | None = None

    def current(self) -> CurrentLabels:
        """The labels as of now (re-derived only from events newer than the last look)."""
        clustering = current_clustering(self.workspace) or ""
        fingerprint = self.store.fingerprint()
        if self._labels is not None and self._seen == (clustering, fingerprint):
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
        self._deriver, self._seen = deriver, (clustering, fingerprint)
        self._labels = deriver.result(f"{clustering}|{fingerprint}")
        return self._labels

    def state(self) -> str:
        """What a subset manifest records: the clustering and the store fingerprint the labels came from."""
        labels = self.current()
        return labels.fingerprint

    def clause(self, concepts: Sequence[str], panel_types: Sequence[str]) -> LabelClause:
        return LabelClause(*self.current().selection(concepts, panel_types))


def load_tables(connection: duckdb.DuckDBPyConnection, labels: CurrentLabels) -> None:
    """(Re)create the temp tables and the `annotations` view of a reader connection from `labels`."""
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
    connection.execute(_SQL["view"])


def _columns(labels: object) -> dict[str, pa.Array]:
    labels = list(labels)
    return {name: pa.array([_value(getattr(label, name)) for label in labels], kind) for name, kind in _LABEL_COLUMNS}


def _value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value

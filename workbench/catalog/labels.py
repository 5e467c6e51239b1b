"""Annotation events in WS/state/annotations.sqlite (WAL): many annotators append at once, none waits for readers.

Contract: data_catalog/schemas/annotations.yaml. Rows are only ever appended (a correction is a newer label),
so `(row count, last id)` identifies the content; `catalog refresh` folds the labels into `figures`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from workbench.storage import connect_sqlite, write_transaction
from workbench.workspace import Workspace

COLUMNS = ("key", "annotator", "concept", "panel_type", "score", "created_at")
ARROW_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("annotator", pa.string(), nullable=False),
        ("concept", pa.string()),
        ("panel_type", pa.string()),
        ("score", pa.float64()),
        pa.field("created_at", pa.timestamp("us"), nullable=False),
    ]
)
_SQL = {
    "create": """
        CREATE TABLE IF NOT EXISTS annotations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL,
            annotator TEXT NOT NULL,
            concept TEXT,
            panel_type TEXT,
            score REAL,
            created_at TEXT NOT NULL
        )""",
    "index": "CREATE INDEX IF NOT EXISTS annotations_by_key ON annotations (key)",
    "insert": """
        INSERT INTO annotations (key, annotator, concept, panel_type, score, created_at)
        VALUES (?, ?, ?, ?, ?, coalesce(?, strftime('%Y-%m-%d %H:%M:%f', 'now')))""",
    "fingerprint": "SELECT count(*), coalesce(max(id), 0) FROM annotations",
    "all": "SELECT key, annotator, concept, panel_type, score, created_at FROM annotations ORDER BY id",
}


class AnnotationStore:
    """Append and read annotation events of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.path = workspace.annotations_db

    def _connect(self):  # noqa: ANN202 - sqlite3.Connection
        connection = connect_sqlite(self.path)
        with write_transaction(connection):
            connection.execute(_SQL["create"])
            connection.execute(_SQL["index"])
        return connection

    def ensure(self) -> None:
        """Create the store (an empty table) when it does not exist yet."""
        self._connect().close()

    def add(self, labels: Iterable[Mapping[str, Any]]) -> int:
        """Append labels (mappings with `key`, `annotator` and optional concept/panel_type/score/created_at)."""
        rows = [tuple(_value(label.get(name)) for name in COLUMNS) for label in labels]
        for row in rows:
            if not row[0] or not row[1]:
                raise ValueError(f"an annotation needs a key and an annotator: {row}")
        connection = self._connect()
        try:
            with write_transaction(connection):
                connection.executemany(_SQL["insert"], rows)
        finally:
            connection.close()
        return len(rows)

    def fingerprint(self) -> str:
        """'rows:last id' — changes with every appended label; '0:0' without a store."""
        if not self.path.is_file():
            return "0:0"
        connection = self._connect()
        try:
            count, last = connection.execute(_SQL["fingerprint"]).fetchone()
        finally:
            connection.close()
        return f"{count}:{last}"

    def to_arrow(self, batch_rows: int = 200_000) -> pa.Table:
        """All labels in the documented columns (an empty table without a store), read in bounded batches."""
        if not self.path.is_file():
            return ARROW_SCHEMA.empty_table()
        connection = self._connect()
        batches = []
        try:
            cursor = connection.execute(_SQL["all"])
            while rows := cursor.fetchmany(batch_rows):
                batches.append(_batch(rows))
        finally:
            connection.close()
        return pa.Table.from_batches(batches, schema=ARROW_SCHEMA)

    def add_arrow(self, labels: pa.Table, batch_rows: int = 200_000) -> int:
        """Append a table of labels (the documented columns; created_at optional) in one transaction."""
        missing = {"key", "annotator"} - set(labels.column_names)
        if missing:
            raise ValueError(f"annotation table lacks columns {sorted(missing)}")
        connection = self._connect()
        try:
            with write_transaction(connection):
                for batch in labels.to_batches(batch_rows):
                    columns = [
                        batch.column(name).to_pylist() if name in batch.schema.names else [None] * batch.num_rows
                        for name in COLUMNS
                    ]
                    rows = [tuple(_value(v) for v in row) for row in zip(*columns, strict=True)]
                    connection.executemany(_SQL["insert"], rows)
        finally:
            connection.close()
        return labels.num_rows


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array(values, type=pa.string() if field.name == "created_at" else field.type)
        for values, field in zip(columns, ARROW_SCHEMA, strict=True)
    ]
    arrays[-1] = arrays[-1].cast(pa.timestamp("us"))
    return pa.RecordBatch.from_arrays(arrays, schema=ARROW_SCHEMA)


def _value(value: Any) -> Any:
    return value.isoformat(sep=" ") if hasattr(value, "isoformat") else value

"""Annotation events in WS/state/annotations.sqlite (WAL): many annotators append at once, none waits for readers.

Contract: data_catalog/schemas/annotations.yaml. Rows are only ever appended (a correction is a newer label),
so `(row count, last id)` identifies the content; `catalog refresh` folds the labels into `figures`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workbench.storage import connect_sqlite, write_transaction
from workbench.workspace import Workspace

COLUMNS = ("key", "annotator", "concept", "panel_type", "score", "created_at")
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


def _value(value: Any) -> Any:
    return value.isoformat(sep=" ") if hasattr(value, "isoformat") else value

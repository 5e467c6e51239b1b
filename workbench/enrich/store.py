"""The `pubmed` table in WS/catalog.duckdb (upserted by PMID) and its copy WS/catalog/pubmed.parquet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.workspace import Workspace

TABLE = "pubmed"
FOUND, MISSING = "found", "missing"

_QUALIFIER = pa.struct([("name", pa.string()), ("ui", pa.string()), ("major", pa.bool_())])
_HEADING = pa.struct(
    [
        ("descriptor", pa.string()),
        ("descriptor_ui", pa.string()),
        ("major", pa.bool_()),
        ("qualifiers", pa.list_(_QUALIFIER)),
    ]
)
#: Columns of the table; data_catalog/schemas/pubmed.yaml documents them.
SCHEMA = pa.schema(
    [
        pa.field("pmid", pa.string(), nullable=False),
        ("status", pa.string()),
        ("pmcid", pa.string()),
        ("doi", pa.string()),
        ("title", pa.string()),
        ("journal", pa.string()),
        ("journal_iso", pa.string()),
        ("year", pa.int32()),
        ("abstract", pa.string()),
        ("publication_types", pa.list_(pa.string())),
        ("mesh", pa.list_(_HEADING)),
        ("mesh_terms", pa.list_(pa.string())),
        ("reference_pmids", pa.list_(pa.string())),
        ("reference_count", pa.int32()),
        ("reference_pmid_count", pa.int32()),
        ("cache_file", pa.string()),
        ("fetched_at", pa.timestamp("us")),
    ]
)

_SQL = {
    "table_exists": "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
    "create": "CREATE TABLE IF NOT EXISTS pubmed AS SELECT * FROM staged_pubmed LIMIT 0",
    "delete_staged": "DELETE FROM pubmed WHERE pmid IN (SELECT pmid FROM staged_pubmed)",
    "insert_staged": "INSERT INTO pubmed BY NAME SELECT * FROM staged_pubmed",
    "statuses": "SELECT pmid, status FROM pubmed",
    "count": "SELECT status, count(*) FROM pubmed GROUP BY status",
    "export": "SELECT * FROM pubmed ORDER BY CAST(pmid AS BIGINT)",
}


class PubmedStore:
    """Short-lived connections only, so other processes are locked out of catalog.duckdb as little as possible."""

    def __init__(self, workspace: Workspace) -> None:
        self.database = workspace.database
        self.parquet = workspace.catalog_dir / "pubmed.parquet"

    def statuses(self) -> dict[str, str]:
        """PMID -> status (found or missing) of the rows already in the table."""
        if not self.database.is_file():
            return {}
        with duckdb.connect(str(self.database), read_only=True) as connection:
            if not self._exists(connection):
                return {}
            return dict(connection.execute(_SQL["statuses"]).fetchall())

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        if not self.database.is_file():
            return {}
        with duckdb.connect(str(self.database), read_only=True) as connection:
            if not self._exists(connection):
                return {}
            return dict(connection.execute(_SQL["count"]).fetchall())

    def upsert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows`, replacing rows with the same PMID, in one transaction."""
        if not rows:
            return
        staged = pa.Table.from_pylist(list(rows), schema=SCHEMA)
        with duckdb.connect(str(self.database)) as connection:
            connection.register("staged_pubmed", staged)
            connection.execute(_SQL["create"])
            connection.execute("BEGIN TRANSACTION")
            try:
                connection.execute(_SQL["delete_staged"])
                connection.execute(_SQL["insert_staged"])
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def export_parquet(self, batch_rows: int = 50_000) -> Path | None:
        """Rewrite WS/catalog/pubmed.parquet from the table (temp file + rename); None when there is no table."""
        if not self.database.is_file():
            return None
        with duckdb.connect(str(self.database), read_only=True) as connection:
            if not self._exists(connection):
                return None
            self.parquet.parent.mkdir(parents=True, exist_ok=True)
            temp = self.parquet.with_name(f".{self.parquet.name}.{os.getpid()}.tmp")
            try:
                reader = connection.execute(_SQL["export"]).to_arrow_reader(batch_rows)
                with pq.ParquetWriter(temp, reader.schema) as writer:
                    for batch in reader:
                        writer.write_batch(batch)
                os.replace(temp, self.parquet)
            finally:
                temp.unlink(missing_ok=True)
        return self.parquet

    @staticmethod
    def _exists(connection: duckdb.DuckDBPyConnection) -> bool:
        return connection.execute(_SQL["table_exists"], [TABLE]).fetchone()[0] > 0

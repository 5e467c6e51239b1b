"""The `pubmed` table in WS/state/pubmed.duckdb (upserted by PMID) and its copy WS/catalog/pubmed.parquet."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.ipc  # noqa: F401 - pa.ipc
import pyarrow.parquet as pq

from workbench.fileio import atomic_path, file_sha256
from workbench.storage import connect_duckdb
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


FINGERPRINT_KEY = b"workbench.content_sha256"


class PubmedStore:
    """Enrichment's working table in WS/state/pubmed.duckdb (only enrich opens it, one short transaction at a
    time, waiting for another enrich if need be) and its published copy WS/catalog/pubmed.parquet, which every
    other stage reads. The Parquet footer carries a digest of the rows, so later stages notice any change."""

    def __init__(self, workspace: Workspace) -> None:
        self.database = workspace.pubmed_db
        self.parquet = workspace.catalog_dir / "pubmed.parquet"

    def statuses(self) -> dict[str, str]:
        """PMID -> status (found or missing) of the rows already in the table."""
        if not self.database.is_file():
            return {}
        with connect_duckdb(self.database, read_only=True) as connection:
            if not self._exists(connection):
                return {}
            return dict(connection.execute(_SQL["statuses"]).fetchall())

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        if not self.database.is_file():
            return {}
        with connect_duckdb(self.database, read_only=True) as connection:
            if not self._exists(connection):
                return {}
            return dict(connection.execute(_SQL["count"]).fetchall())

    def upsert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows`, replacing rows with the same PMID, in one transaction."""
        if not rows:
            return
        staged = pa.Table.from_pylist(list(rows), schema=SCHEMA)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        with connect_duckdb(self.database, read_only=False) as connection:
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
        """Rewrite WS/catalog/pubmed.parquet from the table, atomically, with a digest of its rows in the footer."""
        if not self.database.is_file():
            return None
        with connect_duckdb(self.database, read_only=True) as connection:
            if not self._exists(connection):
                return None
            digest = hashlib.sha256()
            with atomic_path(self.parquet) as temporary:
                reader = connection.execute(_SQL["export"]).to_arrow_reader(batch_rows)
                with pq.ParquetWriter(temporary, reader.schema, compression="zstd") as writer:
                    for batch in reader:
                        _update_digest(digest, batch)
                        writer.write_batch(batch)
                    writer.add_key_value_metadata({FINGERPRINT_KEY: digest.hexdigest().encode()})
        return self.parquet

    @staticmethod
    def _exists(connection: duckdb.DuckDBPyConnection) -> bool:
        return connection.execute(_SQL["table_exists"], [TABLE]).fetchone()[0] > 0


def _update_digest(digest: Any, batch: pa.RecordBatch) -> None:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    digest.update(sink.getvalue())


def pubmed_fingerprint(workspace: Workspace) -> str | None:
    """A digest of the rows of WS/catalog/pubmed.parquet (from its footer; a file digest for older files), or
    None without enrichment. Any change to any row changes it; reading it costs one footer read."""
    path = workspace.catalog_dir / "pubmed.parquet"
    if not path.is_file():
        return None
    metadata = pq.read_metadata(path).metadata or {}
    return (metadata.get(FINGERPRINT_KEY) or file_sha256(path).encode()).decode()

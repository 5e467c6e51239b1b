"""Acquisition's job state: `downloads` in WS/state/acquire.sqlite (WAL) and the file list as Parquet.

Contract: data_catalog/schemas/downloads.yaml. The acquire main thread writes in short transactions (a batch of
finished packages at a time), so a killed run loses at most the packages in flight, and readers — extraction,
notebooks — never wait for it (docs/architecture.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from workbench.errors import ResourceBusy
from workbench.fileio import write_parquet_atomically
from workbench.storage import connect_duckdb, connect_sqlite, write_transaction
from workbench.workspace import Workspace

_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
SQL = {
    "create_downloads": """
        CREATE TABLE IF NOT EXISTS downloads (
            pmcid TEXT PRIMARY KEY,
            file TEXT NOT NULL,
            citation TEXT,
            pmid TEXT,
            license TEXT,
            license_group TEXT,
            last_updated TEXT,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER,
            sha256 TEXT,
            reason TEXT,
            error TEXT,
            source_url TEXT,
            stale INTEGER NOT NULL DEFAULT 0,
            previous_file TEXT,
            updated_at TEXT NOT NULL
        )""",
    "create_selected": """
        CREATE TEMP TABLE IF NOT EXISTS selected (
            list_order INTEGER PRIMARY KEY, pmcid TEXT UNIQUE, file TEXT, citation TEXT, pmid TEXT,
            license TEXT, license_group TEXT, last_updated TEXT)""",
    "clear_selected": "DELETE FROM temp.selected",
    "insert_selected": """
        INSERT OR REPLACE INTO temp.selected
            (list_order, pmcid, file, citation, pmid, license, license_group, last_updated)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
    # A newer Last Updated or a different File: fetch again; a finished download becomes stale for extraction.
    "mark_changed": f"""
        UPDATE downloads SET
            previous_file = CASE WHEN downloads.status = 'done' AND NOT downloads.stale
                                 THEN downloads.file ELSE downloads.previous_file END,
            stale = downloads.stale OR downloads.status = 'done',
            file = s.file, citation = s.citation, pmid = s.pmid, license = s.license,
            license_group = s.license_group, last_updated = s.last_updated,
            status = 'pending', attempts = 0, bytes = NULL, sha256 = NULL, reason = NULL, error = NULL,
            source_url = NULL, updated_at = {_NOW}
        FROM temp.selected AS s
        WHERE downloads.pmcid = s.pmcid AND (s.last_updated > downloads.last_updated OR s.file <> downloads.file)
        RETURNING pmcid, stale""",
    "insert_new": f"""
        INSERT INTO downloads (pmcid, file, citation, pmid, license, license_group, last_updated,
                               status, attempts, stale, updated_at)
        SELECT s.pmcid, s.file, s.citation, s.pmid, s.license, s.license_group, s.last_updated,
               'pending', 0, 0, {_NOW}
        FROM temp.selected AS s
        WHERE NOT EXISTS (SELECT 1 FROM downloads AS d WHERE d.pmcid = s.pmcid)
        RETURNING pmcid""",
    "retry_failed": f"""
        UPDATE downloads SET status = 'pending', updated_at = {_NOW}
        WHERE status = 'failed' AND pmcid IN (SELECT pmcid FROM temp.selected)
        RETURNING pmcid""",
    "done_files": """
        SELECT d.pmcid, d.file, d.bytes FROM downloads AS d JOIN temp.selected AS s USING (pmcid)
        WHERE d.status = 'done'""",
    "reset_to_pending": f"UPDATE downloads SET status = 'pending', updated_at = {_NOW} WHERE pmcid = ?",
    "pending_work": """
        SELECT d.pmcid, d.file FROM downloads AS d JOIN temp.selected AS s USING (pmcid)
        WHERE d.status = 'pending' ORDER BY s.list_order""",
    "record_done": f"""
        UPDATE downloads SET status = 'done', attempts = attempts + ?, bytes = ?, sha256 = ?, source_url = ?,
                             reason = NULL, error = NULL, updated_at = {_NOW}
        WHERE pmcid = ?""",
    "record_failed": f"""
        UPDATE downloads SET status = 'failed', attempts = attempts + ?, reason = ?, error = ?, source_url = ?,
                             updated_at = {_NOW}
        WHERE pmcid = ?""",
    "replaced_files": """
        SELECT DISTINCT previous_file FROM downloads
        WHERE status = 'done' AND previous_file IS NOT NULL AND previous_file <> file
          AND previous_file NOT IN (SELECT file FROM downloads)""",
    "selection_status": """
        SELECT d.status, count(*) AS articles FROM downloads AS d JOIN temp.selected AS s USING (pmcid)
        GROUP BY d.status""",
    "selection_failures": """
        SELECT d.pmcid, d.file, d.reason, d.error FROM downloads AS d JOIN temp.selected AS s USING (pmcid)
        WHERE d.status = 'failed' ORDER BY s.list_order""",
    "clear_stale": f"UPDATE downloads SET stale = 0, previous_file = NULL, updated_at = {_NOW} WHERE pmcid = ?",
    "all_downloads": "SELECT * FROM downloads ORDER BY pmcid",
    "done_downloads": "SELECT * FROM downloads WHERE status = 'done' ORDER BY pmcid",
}
#: Polars types of the `downloads` columns (data_catalog/schemas/downloads.yaml); SQLite keeps text/integers.
DOWNLOADS_SCHEMA = {
    "pmcid": pl.String,
    "file": pl.String,
    "citation": pl.String,
    "pmid": pl.String,
    "license": pl.String,
    "license_group": pl.String,
    "last_updated": pl.Datetime("us"),
    "status": pl.String,
    "attempts": pl.Int32,
    "bytes": pl.Int64,
    "sha256": pl.String,
    "reason": pl.String,
    "error": pl.String,
    "source_url": pl.String,
    "stale": pl.Boolean,
    "previous_file": pl.String,
    "updated_at": pl.Datetime("us"),
}
_TIMESTAMP = "%Y-%m-%d %H:%M:%S%.f"
_LEGACY_TABLE = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'downloads'"


@dataclass(frozen=True)
class PackageOutcome:
    """What a worker reports for one package; the main thread records it."""

    pmcid: str
    attempts: int
    source_url: str | None
    bytes: int | None = None
    sha256: str | None = None
    reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class PlanCounts:
    """How the selection compares with what is already downloaded."""

    new: int
    changed: int
    stale: int
    retried: int
    missing_on_disk: int


class DownloadState:
    """Read/write access to the downloads bookkeeping of one workspace (WS/state/acquire.sqlite, WAL mode).

    Each write is a short transaction, so extraction (which clears stale flags) and readers (notebooks,
    `download_state`) run alongside an acquisition; `downloads` of a workspace made before the state split
    are copied over from catalog.duckdb once.
    """

    def __init__(self, workspace: Workspace) -> None:
        workspace.ensure()
        self.workspace = workspace
        self.con = connect_sqlite(workspace.downloads_db)
        with write_transaction(self.con):
            self.con.execute(SQL["create_downloads"])
            self.con.execute(SQL["create_selected"])
        _migrate_legacy(workspace, self.con)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DownloadState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def store_file_list(self, file_list: pl.DataFrame) -> None:
        """Keep the latest file list (all rows) as WS/state/file_list.parquet, so later stages can join by pmcid."""
        write_parquet_atomically(file_list.to_arrow(), self.workspace.file_list)

    def plan(self, selected: pl.DataFrame, retry_failed: bool) -> PlanCounts:
        """Bring `downloads` in line with the selection: new rows pending, changed ones pending (+stale when
        they had been downloaded), failed ones pending if `retry_failed`, done ones whose file vanished pending."""
        self._register_selection(selected)
        with write_transaction(self.con):
            changed = self.con.execute(SQL["mark_changed"]).fetchall()
            new = self.con.execute(SQL["insert_new"]).fetchall()
            retried = self.con.execute(SQL["retry_failed"]).fetchall() if retry_failed else []
        vanished = [
            pmcid
            for pmcid, file, size in self.con.execute(SQL["done_files"]).fetchall()
            if not _present(self.workspace.mirror / file, size)
        ]
        self._execute_each(SQL["reset_to_pending"], [[pmcid] for pmcid in vanished])
        return PlanCounts(
            new=len(new),
            changed=len(changed),
            stale=sum(1 for _, stale in changed if stale),
            retried=len(retried),
            missing_on_disk=len(vanished),
        )

    def pending(self) -> list[tuple[str, str]]:
        """(pmcid, file) of the selection still to fetch, in file-list order."""
        return [(pmcid, file) for pmcid, file in self.con.execute(SQL["pending_work"]).fetchall()]

    def record(self, outcomes: Sequence[PackageOutcome]) -> None:
        """Record finished packages (one short transaction per batch)."""
        if not outcomes:
            return
        with write_transaction(self.con):
            for outcome in outcomes:
                if outcome.ok:
                    self.con.execute(
                        SQL["record_done"],
                        [outcome.attempts, outcome.bytes, outcome.sha256, outcome.source_url, outcome.pmcid],
                    )
                else:
                    self.con.execute(
                        SQL["record_failed"],
                        [outcome.attempts, outcome.reason, outcome.error, outcome.source_url, outcome.pmcid],
                    )

    def replaced_files(self) -> list[str]:
        """Mirror paths of earlier package versions that a finished newer download replaced (safe to delete)."""
        return [row[0] for row in self.con.execute(SQL["replaced_files"]).fetchall()]

    def selection_status(self) -> dict[str, int]:
        return dict(self.con.execute(SQL["selection_status"]).fetchall())

    def selection_failures(self) -> pl.DataFrame:
        cursor = self.con.execute(SQL["selection_failures"])
        names = [column[0] for column in cursor.description]
        return pl.DataFrame(cursor.fetchall(), schema=dict.fromkeys(names, pl.String), orient="row")

    def clear_stale(self, pmcids: Iterable[str]) -> None:
        self._execute_each(SQL["clear_stale"], [[pmcid] for pmcid in pmcids])

    def _execute_each(self, sql: str, parameter_sets: list[list[object]]) -> None:
        if parameter_sets:
            with write_transaction(self.con):
                self.con.executemany(sql, parameter_sets)

    def _register_selection(self, selected: pl.DataFrame) -> None:
        columns = ("pmcid", "file", "citation", "pmid", "license", "license_group")
        frame = selected.with_row_index("list_order").select(
            "list_order",
            *[
                pl.col(c).cast(pl.String) if c in selected.columns else pl.lit(None, pl.String).alias(c)
                for c in columns
            ],
            pl.col("last_updated").dt.strftime("%Y-%m-%d %H:%M:%S").alias("last_updated"),
        )
        with write_transaction(self.con):
            self.con.execute(SQL["clear_selected"])
            self.con.executemany(SQL["insert_selected"], frame.iter_rows())


def _present(path: Path, size: int | None) -> bool:
    try:
        return size is None or path.stat().st_size == size
    except FileNotFoundError:
        return False


def _migrate_legacy(workspace: Workspace, connection: sqlite3.Connection) -> None:
    """Copy `downloads` out of a pre-split catalog.duckdb once (the state file is empty)."""
    if not workspace.database.is_file() or connection.execute("SELECT count(*) FROM downloads").fetchone()[0]:
        return
    try:
        legacy = connect_duckdb(workspace.database, read_only=True, wait_s=0)
    except ResourceBusy:
        return
    with legacy:
        if not legacy.execute(_LEGACY_TABLE).fetchone()[0]:
            return
        rows = legacy.execute(f"SELECT {', '.join(DOWNLOADS_SCHEMA)} FROM downloads").fetchall()
    with write_transaction(connection):
        names, marks = ", ".join(DOWNLOADS_SCHEMA), ", ".join("?" * len(DOWNLOADS_SCHEMA))
        connection.executemany(
            f"INSERT OR IGNORE INTO downloads ({names}) VALUES ({marks})",
            [tuple(str(v) if hasattr(v, "isoformat") else v for v in row) for row in rows],
        )


def _frame(cursor: sqlite3.Cursor) -> pl.DataFrame:
    names = [column[0] for column in cursor.description]
    raw = pl.DataFrame(
        cursor.fetchall(),
        schema={n: pl.String if DOWNLOADS_SCHEMA[n] == pl.Datetime("us") else DOWNLOADS_SCHEMA[n] for n in names},
        orient="row",
    )
    return raw.with_columns(
        pl.col(n).str.strptime(pl.Datetime("us"), _TIMESTAMP, strict=False)
        for n in names
        if DOWNLOADS_SCHEMA[n] == pl.Datetime("us")
    )


def _read(workspace: Workspace, template: str) -> pl.DataFrame | None:
    """Rows of `downloads` as typed polars, or None when the workspace never acquired anything."""
    if not workspace.downloads_db.is_file():
        if workspace.database.is_file():
            DownloadState(workspace).close()  # migrates a pre-split workspace
        if not workspace.downloads_db.is_file():
            return None
    connection = connect_sqlite(workspace.downloads_db)
    try:
        if not connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 'downloads'").fetchone()[0]:
            return None
        return _frame(connection.execute(SQL[template]))
    finally:
        connection.close()


def download_state(workspace: str | Path | Workspace) -> pl.DataFrame:
    """The `downloads` table of a workspace as a DataFrame (empty when nothing was acquired yet)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    frame = _read(ws, "all_downloads")
    return pl.DataFrame() if frame is None else frame


def done_downloads(workspace: Workspace) -> pl.DataFrame | None:
    """Finished downloads (all columns), or None when the workspace has no acquisition state."""
    return _read(workspace, "done_downloads")


def file_list_rows(workspace: Workspace, pmcids: Sequence[str]) -> pl.DataFrame | None:
    """Rows of the stored file list for `pmcids`, or None when acquisition never stored one."""
    if not workspace.file_list.is_file():
        return None
    return pl.scan_parquet(workspace.file_list).filter(pl.col("pmcid").is_in(list(pmcids))).collect()


def clear_stale(workspace: str | Path | Workspace, pmcids: Iterable[str]) -> None:
    """For the extraction stage: the listed articles were re-extracted from their current package."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    with DownloadState(ws) as state:
        state.clear_stale(pmcids)

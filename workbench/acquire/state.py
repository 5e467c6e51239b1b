"""The `downloads` and `file_list` tables in WS/catalog.duckdb (contract: data_catalog/schemas/downloads.yaml).

Only the acquire main thread writes here; every statement is its own transaction, so a killed run loses at
most the packages that were in flight.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from workbench.errors import ResourceBusy
from workbench.workspace import Workspace

SQL = {
    "create_downloads": """
        CREATE TABLE IF NOT EXISTS downloads (
            pmcid VARCHAR PRIMARY KEY,
            file VARCHAR NOT NULL,
            citation VARCHAR,
            pmid VARCHAR,
            license VARCHAR,
            license_group VARCHAR,
            last_updated TIMESTAMP,
            status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            bytes BIGINT,
            sha256 VARCHAR,
            reason VARCHAR,
            error VARCHAR,
            source_url VARCHAR,
            stale BOOLEAN NOT NULL DEFAULT false,
            previous_file VARCHAR,
            updated_at TIMESTAMP NOT NULL
        )""",
    "replace_file_list": "CREATE OR REPLACE TABLE file_list AS SELECT * FROM incoming_file_list",
    # A newer Last Updated or a different File: fetch again; a finished download becomes stale for extraction.
    "mark_changed": """
        UPDATE downloads AS d SET
            previous_file = CASE WHEN d.status = 'done' AND NOT d.stale THEN d.file ELSE d.previous_file END,
            stale = d.stale OR d.status = 'done',
            file = s.file, citation = s.citation, pmid = s.pmid, license = s.license,
            license_group = s.license_group, last_updated = s.last_updated,
            status = 'pending', attempts = 0, bytes = NULL, sha256 = NULL, reason = NULL, error = NULL,
            source_url = NULL, updated_at = now()
        FROM selected AS s
        WHERE d.pmcid = s.pmcid AND (s.last_updated > d.last_updated OR s.file <> d.file)
        RETURNING d.pmcid, d.stale""",
    "insert_new": """
        INSERT INTO downloads (pmcid, file, citation, pmid, license, license_group, last_updated,
                               status, attempts, stale, updated_at)
        SELECT s.pmcid, s.file, s.citation, s.pmid, s.license, s.license_group, s.last_updated,
               'pending', 0, false, now()
        FROM selected AS s
        WHERE NOT EXISTS (SELECT 1 FROM downloads AS d WHERE d.pmcid = s.pmcid)
        RETURNING pmcid""",
    "retry_failed": """
        UPDATE downloads AS d SET status = 'pending', updated_at = now()
        FROM selected AS s WHERE d.pmcid = s.pmcid AND d.status = 'failed'
        RETURNING d.pmcid""",
    "done_files": """
        SELECT d.pmcid, d.file, d.bytes FROM downloads AS d JOIN selected AS s USING (pmcid)
        WHERE d.status = 'done'""",
    "reset_to_pending": "UPDATE downloads SET status = 'pending', updated_at = now() WHERE pmcid = ?",
    "pending_work": """
        SELECT d.pmcid, d.file FROM downloads AS d JOIN selected AS s USING (pmcid)
        WHERE d.status = 'pending' ORDER BY s.list_order""",
    "record_done": """
        UPDATE downloads SET status = 'done', attempts = attempts + ?, bytes = ?, sha256 = ?, source_url = ?,
                             reason = NULL, error = NULL, updated_at = now()
        WHERE pmcid = ?""",
    "record_failed": """
        UPDATE downloads SET status = 'failed', attempts = attempts + ?, reason = ?, error = ?, source_url = ?,
                             updated_at = now()
        WHERE pmcid = ?""",
    "replaced_files": """
        SELECT DISTINCT previous_file FROM downloads
        WHERE status = 'done' AND previous_file IS NOT NULL AND previous_file <> file
          AND previous_file NOT IN (SELECT file FROM downloads)""",
    "selection_status": """
        SELECT d.status, count(*) AS articles FROM downloads AS d JOIN selected AS s USING (pmcid)
        GROUP BY d.status""",
    "selection_failures": """
        SELECT d.pmcid, d.file, d.reason, d.error FROM downloads AS d JOIN selected AS s USING (pmcid)
        WHERE d.status = 'failed' ORDER BY s.list_order""",
    "clear_stale": "UPDATE downloads SET stale = false, previous_file = NULL, updated_at = now() WHERE pmcid = ?",
    "all_downloads": "SELECT * FROM downloads ORDER BY pmcid",
    "has_downloads": "SELECT count(*) FROM information_schema.tables WHERE table_name = 'downloads'",
}


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
    """Read/write access to the downloads bookkeeping of one workspace (a single writer)."""

    def __init__(self, workspace: Workspace) -> None:
        workspace.ensure()
        self.workspace = workspace
        try:
            self.con = duckdb.connect(str(workspace.database))
        except duckdb.IOException as error:
            raise ResourceBusy(
                f"cannot open {workspace.database} for writing ({error}); another process (an acquire run, "
                "a notebook) holds it: close it and re-run"
            ) from error
        self.con.execute(SQL["create_downloads"])

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DownloadState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def store_file_list(self, file_list: pl.DataFrame) -> None:
        """Keep the latest file list (all rows) as table `file_list`, so later stages can join by pmcid."""
        self.con.register("incoming_file_list", file_list)
        try:
            self.con.execute(SQL["replace_file_list"])
        finally:
            self.con.unregister("incoming_file_list")

    def plan(self, selected: pl.DataFrame, retry_failed: bool) -> PlanCounts:
        """Bring `downloads` in line with the selection: new rows pending, changed ones pending (+stale when
        they had been downloaded), failed ones pending if `retry_failed`, done ones whose file vanished pending."""
        self._register_selection(selected)
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
        """Record finished packages (one transaction each batch)."""
        if not outcomes:
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
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
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def replaced_files(self) -> list[str]:
        """Mirror paths of earlier package versions that a finished newer download replaced (safe to delete)."""
        return [row[0] for row in self.con.execute(SQL["replaced_files"]).fetchall()]

    def selection_status(self) -> dict[str, int]:
        return dict(self.con.execute(SQL["selection_status"]).fetchall())

    def selection_failures(self) -> pl.DataFrame:
        return self.con.execute(SQL["selection_failures"]).pl()

    def clear_stale(self, pmcids: Iterable[str]) -> None:
        self._execute_each(SQL["clear_stale"], [[pmcid] for pmcid in pmcids])

    def _execute_each(self, sql: str, parameter_sets: list[list[object]]) -> None:
        if parameter_sets:
            self.con.executemany(sql, parameter_sets)

    def _register_selection(self, selected: pl.DataFrame) -> None:
        self.con.register("selected", selected.with_row_index("list_order"))


def _present(path: Path, size: int | None) -> bool:
    try:
        return size is None or path.stat().st_size == size
    except FileNotFoundError:
        return False


def download_state(workspace: str | Path | Workspace) -> pl.DataFrame:
    """The `downloads` table of a workspace as a DataFrame (empty when nothing was acquired yet)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    if not ws.database.is_file():
        return pl.DataFrame()
    con = duckdb.connect(str(ws.database), read_only=True)
    try:
        if not con.execute(SQL["has_downloads"]).fetchone()[0]:
            return pl.DataFrame()
        return con.execute(SQL["all_downloads"]).pl()
    finally:
        con.close()


def clear_stale(workspace: str | Path | Workspace, pmcids: Iterable[str]) -> None:
    """For the extraction stage: the listed articles were re-extracted from their current package."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    with DownloadState(ws) as state:
        state.clear_stale(pmcids)

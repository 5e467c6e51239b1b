"""The one way to open a workspace database.

Which process writes what is drawn in docs/architecture.md. In short: job state lives in SQLite files in WAL
mode under WS/state/ (readers never block the writer, writers take turns within `busy_timeout`); Parquet
files under WS/catalog/ are the catalog's truth; WS/catalog.duckdb is a read cache rebuilt into a new file
and swapped in atomically, so it is only ever opened read-only by readers.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from workbench.errors import ResourceBusy

SQLITE_BUSY_TIMEOUT_S = 30.0  # a writer waits at most this long for another writer's transaction
DUCKDB_LOCK_WAIT_S = 30.0
_DUCKDB_LOCKED = ("lock", "Conflicting", "being used", "already open")


def connect_sqlite(path: str | Path, *, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to a WAL-mode SQLite file (created when missing) in autocommit mode.

    Use `write_transaction` for writes: it takes the write lock up front (BEGIN IMMEDIATE), so two writers
    queue instead of failing half-way, and readers keep reading the last committed state meanwhile.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ResourceBusy(f"{path}: cannot switch to WAL mode (journal mode is {mode})")
        connection.execute("PRAGMA synchronous = NORMAL")  # durable at each checkpoint; WAL keeps it consistent
    except sqlite3.OperationalError as error:
        connection.close()
        raise _busy_or_raise(path, error) from error
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error; a writer that waits past busy_timeout gets ResourceBusy."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        raise _busy_or_raise(Path(connection_path(connection)), error) from error
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def connection_path(connection: sqlite3.Connection) -> str:
    return next((row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"), "?")


def _busy_or_raise(path: Path, error: sqlite3.OperationalError) -> Exception:
    if "locked" in str(error) or "busy" in str(error):
        return ResourceBusy(f"{path} stayed locked by another writer for {SQLITE_BUSY_TIMEOUT_S:.0f} s ({error})")
    return error


def connect_duckdb(
    path: str | Path, *, read_only: bool, wait_s: float = DUCKDB_LOCK_WAIT_S, config: dict | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, waiting up to `wait_s` while another process holds a conflicting lock.

    Only files one stage owns are opened this way (e.g. enrichment's WS/state/pubmed.duckdb), each time for
    a short transaction, so the wait is short. Raises `ResourceBusy` naming the file after `wait_s`.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except (duckdb.IOException, duckdb.ConnectionException) as error:
            if not any(word in str(error) for word in _DUCKDB_LOCKED):
                raise
            if time.monotonic() >= deadline:
                raise ResourceBusy(f"{path} stayed locked by another process for {wait_s:.0f} s ({error})") from error
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

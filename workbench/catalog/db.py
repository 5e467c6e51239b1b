"""WS/catalog.duckdb: the Parquet catalog materialised as native tables, refreshed idempotently, read safely.

One writer (`refresh_catalog`), many readers (`open_catalog`). `figures`, `articles` and `errors` are native
copies of WS/catalog/*.parquet, rebuilt only when a Parquet file's fingerprint (size + mtime) or the
`annotations` table changed; `figures` is sorted for fast licence/year filters and carries the annotation
labels; the BM25 index is rebuilt with it. `downloads` (written by acquisition) and `annotations` live next to
them. Readers get a connection that cannot write, cannot touch files and cannot change settings.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml

from workbench.catalog import fts, sql
from workbench.catalog.filters import CompiledFilter, FigureFilter, Lookups, compile_filter
from workbench.catalog.progress import run_with_progress
from workbench.catalog.sandbox import WhereRefused, time_limit
from workbench.licenses import DATA_CATALOG
from workbench.workspace import Workspace

MATERIALISATION_VERSION = 3  # bump when the materialised tables change shape: forces a rebuild
PARQUET_TABLES = ("figures", "articles", "errors")
SEARCH_STATE = "search_index"
DEFAULT_TIMEOUT_S = 60.0
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "double": "DOUBLE",
    "list<string>": "VARCHAR[]",
}
_open_lock = threading.Lock()
_open_databases: dict[Path, int] = {}  # catalog files this process holds open read-only, with a count


class CatalogMissing(FileNotFoundError):
    """The workspace has no extracted catalog yet."""


class CatalogBusy(ValueError):
    """Another connection holds the catalog in a way that prevents this one."""


def parquet_path(workspace: Workspace, table: str) -> Path:
    return workspace.catalog_dir / f"{table}.parquet"


def parquet_fingerprint(path: Path) -> str:
    """Size and modification time of a Parquet file (what extraction changes when it rewrites it)."""
    if not path.exists():
        return "absent"
    stat = path.stat()
    return f"v{MATERIALISATION_VERSION}:{stat.st_size}:{stat.st_mtime_ns}"


@cache
def _schema_columns(table: str) -> str:
    columns = yaml.safe_load((DATA_CATALOG / "schemas" / f"{table}.yaml").read_text())["columns"]
    return ", ".join(f'"{name}" {_DUCKDB_TYPES[spec["type"]]}' for name, spec in columns.items())


@dataclass(frozen=True)
class RefreshReport:
    """What `refresh_catalog` rebuilt (empty when everything was current) and the resulting sizes."""

    rebuilt: tuple[str, ...]
    figures: int
    articles: int
    search_index: bool
    compacted: bool = False

    def describe(self) -> str:
        what = f"rebuilt {', '.join(self.rebuilt)}" if self.rebuilt else "catalog already up to date"
        index = "with" if self.search_index else "without"
        compacted = "; file compacted" if self.compacted else ""
        return f"{what}: {self.figures} figures, {self.articles} articles, {index} full-text index{compacted}"


@contextmanager
def _writer(workspace: Workspace, memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    database = workspace.database
    with _open_lock:
        if _open_databases.get(database):
            raise CatalogBusy(
                f"{database} is open for reading in this process; close the open catalog "
                f"(catalog.close()) before refreshing it"
            )
    workspace.ensure()
    try:
        connection = duckdb.connect(str(database), config={"memory_limit": memory_limit} if memory_limit else {})
    except (duckdb.IOException, duckdb.BinderException, duckdb.ConnectionException) as error:
        raise CatalogBusy(
            f"cannot open {database} for writing ({error}); close the notebooks or commands "
            f"that have it open and re-run"
        ) from error
    try:
        connection.execute("SET enable_progress_bar_print = false")  # tqdm bars instead (run_with_progress)
        yield connection
    finally:
        connection.close()


def _state(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    if not connection.execute(sql.TABLE_EXISTS, ["catalog_state"]).fetchone()[0]:
        return {}
    return dict(connection.execute(sql.READ_STATE).fetchall())


def _wanted_state(workspace: Workspace, annotations: str) -> dict[str, str]:
    figures = parquet_fingerprint(parquet_path(workspace, "figures"))
    return {
        "figures": f"{figures}|annotations:{annotations}",
        "articles": parquet_fingerprint(parquet_path(workspace, "articles")),
        "errors": parquet_fingerprint(parquet_path(workspace, "errors")),
        SEARCH_STATE: figures,
    }


def _materialise(connection: duckdb.DuckDBPyConnection, workspace: Workspace, table: str, progress: bool) -> None:
    path = parquet_path(workspace, table)
    source = {"path": str(path)}
    if table != "figures":
        if path.exists():
            run_with_progress(connection, sql.MATERIALISE_TABLE[table], source, label=table, progress=progress)
        else:
            connection.execute(sql.EMPTY_TABLE[table].format(columns=_schema_columns(table)))
        return
    if not connection.execute(sql.ANNOTATION_COUNT).fetchone()[0]:
        run_with_progress(connection, sql.MATERIALISE_FIGURES_UNLABELLED, source, label="figures", progress=progress)
        connection.execute("DROP TABLE IF EXISTS figure_labels")
    else:
        run_with_progress(connection, sql.MATERIALISE_LABELS, label="annotation labels", progress=progress)
        sort, align, glue, *drops = sql.MATERIALISE_FIGURES_LABELLED
        run_with_progress(connection, sort, source, label="figures: sort", progress=progress)
        run_with_progress(connection, align, label="figures: align labels", progress=progress)
        run_with_progress(connection, glue, label="figures: add labels", progress=progress)
        for drop in drops:
            connection.execute(drop)
    run_with_progress(connection, sql.MATERIALISE_VOCABULARY, label="figures: vocabulary", progress=progress)


def refresh_catalog(
    workspace: Workspace | str | Path,
    *,
    search_index: bool = True,
    progress: bool = True,
    memory_limit: str | None = None,
    compact: bool = False,
) -> RefreshReport:
    """Bring WS/catalog.duckdb up to date with WS/catalog/*.parquet and the annotations; idempotent.

    Each table is replaced inside a transaction, so an interrupted refresh leaves the previous state.
    `search_index=False` skips the BM25 index (and drops a stale one, so text queries fail clearly).
    `memory_limit` (e.g. "6GB") caps DuckDB's memory on shared machines; it spills to disk beyond that.
    Replaced tables leave free blocks in the file (DuckDB reuses them, but the file does not shrink);
    `compact=True` rewrites the file without them when more than a quarter of it is free.
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    figures_parquet = parquet_path(workspace, "figures")
    if not figures_parquet.exists():
        raise CatalogMissing(
            f"no catalog at {figures_parquet}; run `workbench extract --workspace {workspace.root}` first"
        )
    rebuilt: list[str] = []
    with _writer(workspace, memory_limit) as connection:
        connection.execute(sql.CREATE_STATE)
        connection.execute(sql.CREATE_ANNOTATIONS)
        annotations = connection.execute(sql.ANNOTATIONS_FINGERPRINT).fetchone()[0]
        current, wanted = _state(connection), _wanted_state(workspace, annotations)
        stale = [
            table
            for table in PARQUET_TABLES
            if current.get(table) != wanted[table] or not connection.execute(sql.TABLE_EXISTS, [table]).fetchone()[0]
        ]
        for table in stale:
            connection.execute("BEGIN TRANSACTION")
            _materialise(connection, workspace, table, progress)
            connection.execute(sql.WRITE_STATE, [table, wanted[table]])
            connection.execute("COMMIT")
            rebuilt.append(table)
        index_current = current.get(SEARCH_STATE) == wanted[SEARCH_STATE] and fts.has_search_index(connection)
        if search_index and not index_current:
            fts.build_search_index(connection, progress=progress)
            connection.execute(sql.WRITE_STATE, [SEARCH_STATE, wanted[SEARCH_STATE]])
            rebuilt.append(SEARCH_STATE)
        elif not search_index and not index_current and fts.has_search_index(connection):
            connection.execute(sql.DROP_SEARCH_INDEX)
            connection.execute("DELETE FROM catalog_state WHERE name = ?", [SEARCH_STATE])
        if rebuilt:
            connection.execute("CHECKPOINT")
        figures = connection.execute("SELECT count(*) FROM figures").fetchone()[0]
        articles = connection.execute("SELECT count(*) FROM articles").fetchone()[0]
        has_index = fts.has_search_index(connection)
        wasted = _free_fraction(connection)
        if compact and wasted > 0.25:
            copy = workspace.database.with_name(workspace.database.name + ".compact")
            copy.unlink(missing_ok=True)
            connection.execute(f"ATTACH '{_quoted(copy)}' AS compacted")
            name = connection.execute("SELECT current_database()").fetchone()[0]
            statement = sql.COMPACT_INTO.format(database='"' + name.replace('"', '""') + '"')
            run_with_progress(connection, statement, label="compact", progress=progress)
            connection.execute("DETACH compacted")
    compacted = compact and wasted > 0.25
    if compacted:
        copy.replace(workspace.database)  # the writer is closed; readers cannot be open (single writer)
    return RefreshReport(tuple(rebuilt), int(figures), int(articles), has_index, compacted)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _free_fraction(connection: duckdb.DuckDBPyConnection) -> float:
    """Share of the database file's blocks that are free (left by replaced tables)."""
    total, free = connection.execute(sql.DATABASE_BLOCKS).fetchone()
    return free / total if total else 0.0


def is_stale(workspace: Workspace) -> bool:
    """Whether the materialised tables or the search index lag behind the Parquet files / annotations."""
    if not workspace.database.exists():
        return True
    with _open_lock:
        if _open_databases.get(workspace.database):
            return False  # cannot be refreshed from here while open; readers see the current state
    try:
        connection = duckdb.connect(str(workspace.database), read_only=True)
    except (duckdb.IOException, duckdb.ConnectionException):
        return False  # a writer holds it (it is refreshing, or acquisition is running): read what is there
    with connection:
        current = _state(connection)
        if not current or not connection.execute(sql.TABLE_EXISTS, ["annotations"]).fetchone()[0]:
            return True
        wanted = _wanted_state(workspace, connection.execute(sql.ANNOTATIONS_FINGERPRINT).fetchone()[0])
        if SEARCH_STATE not in current:
            wanted.pop(SEARCH_STATE)  # refreshed without an index on purpose
        return any(current.get(name) != value for name, value in wanted.items())


def _locked_connection(database: Path, spill_directory: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the catalog attached read-only, fts loaded, file access off, settings locked.

    A separate instance (not `duckdb.connect(path, read_only=True)`), so other code in this process that
    opens the same file keeps its own, unlocked configuration. Large sorts (big subsets) spill to
    `spill_directory`, which stays usable after file access is switched off.
    """
    connection = duckdb.connect(":memory:", config={"temp_directory": str(spill_directory)})
    try:
        fts.load_extension(connection)
        # ATTACH takes no parameters; the path is the workspace's own file, quoted.
        connection.execute(f"ATTACH '{_quoted(database)}' AS catalog (READ_ONLY)")
        connection.execute("USE catalog")
        connection.execute("SET enable_progress_bar_print = false")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection


@dataclass
class Catalog:
    """A read-only view of a workspace's catalog. Queries run on the locked connection with a time limit."""

    workspace: Workspace
    connection: duckdb.DuckDBPyConnection
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    has_search_index: bool = False
    _closed: bool = field(default=False, repr=False)

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.connection.close()
        with _open_lock:
            left = _open_databases.get(self.workspace.database, 1) - 1
            if left > 0:
                _open_databases[self.workspace.database] = left
            else:
                _open_databases.pop(self.workspace.database, None)

    # --- running queries -----------------------------------------------------------------------------------
    def compile(self, selection: FigureFilter | None) -> CompiledFilter:
        selection = selection or FigureFilter()
        if selection.text and not self.has_search_index:
            raise ValueError(
                f"{self.workspace.database} has no full-text index; run `workbench catalog refresh "
                f"--workspace {self.workspace.root}` (without --no-search-index)"
            )
        return compile_filter(selection, Lookups(partial(fts.term_ids, self.connection), self._list_values))

    def _list_values(self, column: str, values: Sequence[str]) -> list[str]:
        return [value for (value,) in self.connection.execute(sql.LIST_VALUES, [column, list(values)]).fetchall()]

    def execute(
        self,
        statement: str,
        params: list[Any] | tuple[Any, ...] = (),
        selection: FigureFilter | None = None,
        *,
        limited: bool = True,
    ) -> duckdb.DuckDBPyConnection:
        """Run a statement on the locked connection, within the time limit unless `limited=False`.

        When `selection` carries a raw WHERE, DuckDB's binding errors (unknown column, wrong type) are
        reported as a `WhereRefused` naming the clause.
        """
        with time_limit(self.connection, self.timeout_s if limited else None):
            try:
                return self.connection.execute(statement, list(params))
            except (
                duckdb.BinderException,
                duckdb.ConversionException,
                duckdb.InvalidInputException,
                duckdb.CatalogException,
                duckdb.PermissionException,
            ) as error:
                if selection is None or not selection.where:
                    raise
                raise WhereRefused(
                    f"the WHERE clause {selection.where!r} cannot be evaluated: {str(error).splitlines()[0]}"
                ) from error

    def query(self, template: str, selection: FigureFilter | None, *extra: Any, **fragments: str) -> list[tuple]:
        """Fill a named template's `{where}` with the compiled selection; `extra` parameters follow its own."""
        compiled = self.compile(selection)
        statement = compiled.render(template, **fragments)
        return self.execute(statement, [*compiled.params, *extra], selection).fetchall()

    # --- the usual questions -------------------------------------------------------------------------------
    def count(self, selection: FigureFilter | None = None) -> int:
        return int(self.query(sql.COUNT, selection)[0][0])

    def preview(self, selection: FigureFilter | None = None, limit: int = 12) -> list[dict[str, Any]]:
        """The first `limit` selected figures (key order) with what a preview shows and where the JPEG lies."""
        compiled = self.compile(selection)
        cursor = self.execute(compiled.render(sql.PREVIEW), [*compiled.params, limit], selection)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def selected_rows(self, selection: FigureFilter | None, batch_rows: int = 65_536) -> pa.RecordBatchReader:
        """Every selected row (all columns of `figures`) in key order, streamed as Arrow record batches.

        No time limit: sorting a large selection is the expected cost of materialising it.
        """
        compiled = self.compile(selection)
        cursor = self.execute(compiled.render(sql.SELECTED_ROWS), compiled.params, selection, limited=False)
        return cursor.to_arrow_reader(batch_rows)

    def selection_summary(self, selection: FigureFilter | None = None) -> list[tuple[str, str, int]]:
        """(licence group, licence, samples) of the selection."""
        return [(group, lic, int(n)) for group, lic, n in self.query(sql.SELECTION_SUMMARY, selection)]

    def search(
        self, text: str, limit: int = 10, selection: FigureFilter | None = None, mode: str = "any"
    ) -> list[fts.SearchHit]:
        """Top `limit` BM25 matches of `text` (`mode`: any word, all words, phrase) among the selected figures."""
        if not text.strip():
            raise ValueError("the search text is empty")
        selection = replace(selection or FigureFilter(), text=text, text_mode=mode)
        compiled = self.compile(selection)  # raises the clear "no index" error
        run = partial(self.execute, selection=selection)
        ids = fts.term_ids(self.connection, text)
        text_only = replace(selection, text="", text_mode="any") == FigureFilter()
        return fts.search(run, selection.text, mode, ids, limit, compiled, text_only)

    def columns(self) -> list[str]:
        return [row[0] for row in self.execute(sql.FIGURE_COLUMNS).fetchall()]


def open_catalog(
    workspace: Workspace | str | Path,
    *,
    refresh: bool = True,
    search_index: bool = True,
    progress: bool = False,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
) -> Catalog:
    """Open a workspace's catalog read-only, refreshing it first when the Parquet catalog changed.

    `refresh=False` opens what is there (e.g. while another process refreshes). Close it (or use `with`)
    before refreshing from this process.
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    if refresh and is_stale(workspace):
        try:
            refresh_catalog(workspace, search_index=search_index, progress=progress)
        except CatalogBusy as error:
            if not workspace.database.exists():
                raise
            warnings.warn(f"reading the catalog as it is, without the latest extraction: {error}", stacklevel=2)
    if not workspace.database.exists():
        raise CatalogMissing(
            f"no catalog database at {workspace.database}; run `workbench extract` and "
            f"`workbench catalog refresh --workspace {workspace.root}`"
        )
    try:
        connection = _locked_connection(workspace.database, workspace.tmp / "duckdb-spill")
    except (duckdb.IOException, duckdb.BinderException, duckdb.ConnectionException) as error:
        raise CatalogBusy(f"cannot open {workspace.database} for reading ({error})") from error
    if not connection.execute(sql.TABLE_EXISTS, ["figures"]).fetchone()[0]:
        connection.close()
        raise CatalogMissing(
            f"{workspace.database} has no figures table; run `workbench catalog refresh --workspace {workspace.root}`"
        )
    with _open_lock:
        _open_databases[workspace.database] = _open_databases.get(workspace.database, 0) + 1
    return Catalog(workspace, connection, timeout_s, fts.has_search_index(connection))

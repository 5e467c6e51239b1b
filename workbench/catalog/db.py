"""Reading a workspace's catalog: `open_catalog` gives a `Catalog`, a sandboxed read-only view.

WS/catalog.duckdb is a read cache that `workbench.catalog.refresh` rebuilds into a new file and renames into
place, so readers never block writers and never see a half-built state. A `Catalog` attaches the file to a
private in-memory DuckDB (file access off, settings locked, memory and threads bounded, every query timed) and,
before each query, notices when a refresh swapped in a new file and re-attaches to it: a long-lived notebook
sees the last committed state.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from workbench.catalog import fts, keyed, layers, sql
from workbench.catalog.filters import CompiledFilter, FigureFilter, Lookups, compile_filter
from workbench.catalog.label_counts import CountParts, LabelSelection
from workbench.catalog.live_labels import (
    OVERRIDE_CLUSTERS,
    SELECTED_ROWS_LABELLED,
    LiveLabels,
    load_tables,
)
from workbench.catalog.refresh import (
    CatalogBusy,
    CatalogMissing,
    RefreshReport,
    is_stale,
    refresh_catalog,
)
from workbench.catalog.sandbox import WhereRefused, time_limit
from workbench.catalog.textindex import TextIndex, TextIndexMissing, has_text_index
from workbench.errors import UserError
from workbench.workspace import Workspace

__all__ = [
    "Catalog",
    "CatalogBusy",
    "CatalogMissing",
    "ReaderLimits",
    "RefreshReport",
    "is_stale",
    "open_catalog",
    "refresh_catalog",
]
DEFAULT_TIMEOUT_S = 60.0


def _quarter_of_memory_gb() -> int:
    """A quarter of this machine's memory, at least 1 GB: room for hot catalog blocks, not for a runaway query."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1
    return max(1, total // 4 // 2**30)


@dataclass(frozen=True)
class ReaderLimits:
    """Resources one reader may use: DuckDB memory (spills to the workspace's tmp beyond it), threads,
    spill space and the time limit of each query (None: none)."""

    memory_limit: str = os.environ.get("WORKBENCH_READER_MEMORY") or f"{_quarter_of_memory_gb()}GB"
    threads: int = 2
    max_temp_directory_size: str = "20GB"
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    stream_timeout_s: float | None = 6 * 3600.0  # reading a whole selection for a subset


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns)


def _locked_connection(database: Path, spill_directory: Path, limits: ReaderLimits) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the catalog attached read-only, file access off, settings locked.

    A separate instance (not `duckdb.connect(path, read_only=True)`), so other code in this process that
    opens the same file keeps its own, unlocked configuration. Large sorts (big subsets) spill to
    `spill_directory`, which stays usable after file access is switched off.
    """
    config = {
        "temp_directory": str(spill_directory),
        "memory_limit": limits.memory_limit,
        "threads": limits.threads,
        "max_temp_directory_size": limits.max_temp_directory_size,
    }
    connection = duckdb.connect(":memory:", config=config)
    try:
        # ATTACH takes no parameters; the path is the workspace's own file, quoted.
        connection.execute(f"ATTACH '{_quoted(database)}' AS catalog (READ_ONLY)")
        connection.execute("USE catalog")
        if connection.execute(sql.TABLE_EXISTS, ["catalog_state"]).fetchone()[0]:
            layers.attach_base(connection, database)  # the immutable base `figures` reads (layers.py)
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
    limits: ReaderLimits = field(default_factory=ReaderLimits)
    _closed: bool = field(default=False, repr=False)
    _identity: tuple[int, int, int] | None = field(default=None, repr=False)
    _retired: list[duckdb.DuckDBPyConnection] = field(default_factory=list, repr=False)
    _labels: LiveLabels | None = field(default=None, repr=False)
    _labels_loaded: tuple[int, str] | None = field(default=None, repr=False)
    _count_parts: CountParts = field(default_factory=CountParts, repr=False)
    _overrides: tuple[int, dict] = field(default=(0, {}), repr=False)  # (connection id, override key -> cluster)
    _text_index: TextIndex | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._identity is None:
            self._identity = _file_identity(self.workspace.database)
        if self._labels is None:
            self._labels = LiveLabels(self.workspace)

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for connection in (*self._retired, self.connection):
            connection.close()
        self._retired.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def follow(self) -> bool:
        """Re-attach when a refresh swapped in a new catalog file since the last query; True when it did.

        The previous connection stays open until the next swap, so a stream started from it (a subset being
        written) finishes on the state it started with.
        """
        identity = _file_identity(self.workspace.database)
        if self._closed or identity is None or identity == self._identity:
            return False
        connection = _locked_connection(self.workspace.database, self.workspace.tmp / "duckdb-spill", self.limits)
        for retired in self._retired:
            retired.close()
        self._retired = [self.connection]
        self.connection, self._identity = connection, identity
        self.has_search_index = has_text_index(self.workspace)
        return True

    def sync_labels(self) -> None:
        """Reload the reader's label tables (and `annotations` view) when the label store moved; cheap otherwise."""
        labels = self._labels.current()
        loaded = (id(self.connection), labels.fingerprint)
        if self._labels_loaded != loaded:
            load_tables(self.connection, labels)
            self._labels_loaded = loaded

    def state(self) -> dict[str, str]:
        """The fingerprints of the catalog state this reader sees (what a subset manifest records), with the
        annotation labels' (`annotation_labels`: clustering and label-store fingerprint)."""
        self.follow()
        state = dict(self.connection.execute(sql.READ_STATE).fetchall())
        state["annotation_labels"] = self._labels.state()
        return state

    # --- running queries -----------------------------------------------------------------------------------
    def compile(self, selection: FigureFilter | None) -> CompiledFilter:
        selection = selection or FigureFilter()
        text_keys = partial(fts.text_keys, self.text_index()) if selection.text else None
        return compile_filter(selection, Lookups(text_keys, self._list_values, self._label_clause))

    def _label_clause(self, concepts: Sequence[str], panel_types: Sequence[str]) -> tuple[str, tuple]:
        self.sync_labels()
        clause = self._labels.clause(concepts, panel_types)
        clusters_of = self._override_clusters({*clause.keys_in, *clause.keys_out})
        return clause.narrowed(clusters_of).sql()

    def _override_clusters(self, keys: set[str]) -> dict[str, int | None]:
        """The cluster of each image with its own label, looked up once per key and reader connection."""
        if self._overrides[0] != id(self.connection):
            self._overrides = (id(self.connection), {})
        known = self._overrides[1]
        missing = sorted(keys - set(known))
        if missing:
            found = dict(self.connection.execute(OVERRIDE_CLUSTERS, [missing]).fetchall())
            known.update({key: found.get(key) for key in missing})
        return known

    def text_index(self) -> TextIndex:
        """The workspace's BM25 text index (WS/indexes/text), opened once; a clear error when there is none."""
        if self._text_index is None:
            try:
                self._text_index = TextIndex.open(self.workspace)
            except TextIndexMissing as error:
                raise ValueError(
                    f"{self.workspace.root} has no full-text index; run `workbench catalog refresh "
                    f"--workspace {self.workspace.root}` (without --no-search-index)"
                ) from error
            self.has_search_index = True
        return self._text_index

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
        self.follow()
        self.sync_labels()
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
        selection = selection or FigureFilter()
        if selection.concepts or selection.panel_types:
            return sum(self.labelled_counts(selection).values())
        return int(self.query(sql.COUNT, selection)[0][0])

    def labelled_counts(self, selection: FigureFilter, column: str | None = None) -> dict[Any, int]:
        """Figures of a selection with label conditions, per value of `column` (one of sql.GROUPABLE_COLUMNS that
        is not a label; None: one total under the key None), by `workbench.catalog.label_counts`."""
        if column is not None and column not in sql.GROUPABLE_COLUMNS:
            raise ValueError(f"cannot count by {column!r}")
        column = column or "NULL"
        self.follow()
        self.sync_labels()
        conditions = [(selection.concepts, ()), ((), selection.panel_types)]
        chosen = LabelSelection.of([self._labels.clause(c, p) for c, p in conditions if c or p])
        others = replace(selection, concepts=(), panel_types=())
        compiled = self.compile(others)
        connection = id(self.connection)
        per_cluster_sql = compiled.render(sql.COUNT_PER_CLUSTER, column=column)

        def count_per_cluster() -> list[tuple]:
            return self.execute(per_cluster_sql, compiled.params, others).fetchall()

        per_cluster = self._count_parts.per_cluster(connection, per_cluster_sql, compiled.params, count_per_cluster)
        overrides_sql = compiled.render(sql.OVERRIDES_SELECTED, column=column)

        def look_up(keys: list[str]) -> list[tuple]:
            return self.execute(overrides_sql, [*compiled.params, keys], others).fetchall()

        selected = self._count_parts.overrides(connection, overrides_sql, compiled.params, chosen.overrides, look_up)
        return chosen.counts(per_cluster, selected)

    def rows_by_key(self, keys: Sequence[str], columns: str) -> list[dict[str, Any]]:
        """`columns` (fixed SQL over `figures`) of the figures with these keys, as dicts; unknown keys left out.
        Short lists read a row group or two per key at any scale (`workbench.catalog.keyed`)."""
        names, rows = keyed.rows_by_key(self.execute, keys, columns)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def preview(self, selection: FigureFilter | None = None, limit: int = 12) -> list[dict[str, Any]]:
        """The first `limit` selected figures (key order) with what a preview shows and where the JPEG lies."""
        compiled = self.compile(selection)
        cursor = self.execute(compiled.render(sql.PREVIEW), [*compiled.params, limit], selection)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def selected_rows(self, selection: FigureFilter | None, batch_rows: int = 65_536) -> pa.RecordBatchReader:
        """Every selected row (all columns of `figures`, then the five annotation fields `LABEL_FIELDS`) in key
        order, streamed as Arrow record batches.

        Sorting and streaming a large selection may take long: the whole stream (not each query) is bounded by
        `limits.stream_timeout_s`.
        """
        compiled = self.compile(selection)
        cursor = self.execute(compiled.render(SELECTED_ROWS_LABELLED), compiled.params, selection, limited=False)
        reader = cursor.to_arrow_reader(batch_rows)
        connection, seconds = self.connection, self.limits.stream_timeout_s

        def bounded() -> Iterator[pa.RecordBatch]:
            with time_limit(connection, seconds):
                yield from reader

        return pa.RecordBatchReader.from_batches(reader.schema, bounded())

    def selection_summary(self, selection: FigureFilter | None = None) -> list[tuple[str, str, int]]:
        """(licence group, licence, samples) of the selection."""
        return [(group, lic, int(n)) for group, lic, n in self.query(sql.SELECTION_SUMMARY, selection)]

    def search(
        self, text: str, limit: int = 10, selection: FigureFilter | None = None, mode: str = "any"
    ) -> list[fts.SearchHit]:
        """Top `limit` BM25 matches of `text` (`mode`: any word, all words, phrase) among the selected figures."""
        self.follow()
        if not text.strip():
            raise UserError("the search text is empty")
        selection = replace(selection or FigureFilter(), text=text, text_mode=mode)
        index = self.text_index()  # raises the clear "no index" error
        others = replace(selection, text="", text_mode="any")
        run = partial(self.execute, selection=selection)
        return fts.search(run, index, selection.text, mode, limit, self.compile(others), others == FigureFilter())

    def columns(self) -> list[str]:
        return [row[0] for row in self.execute(sql.FIGURE_COLUMNS).fetchall()]


def open_catalog(
    workspace: Workspace | str | Path,
    *,
    refresh: bool = True,
    search_index: bool = True,
    progress: bool = False,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    limits: ReaderLimits | None = None,
) -> Catalog:
    """Open a workspace's catalog read-only, refreshing it first when the Parquet catalog changed.

    When another process is refreshing, this one does not wait: it reads the previous state (with a warning)
    and follows the new file once it is swapped in. `refresh=False` opens what is there.
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    limits = limits or ReaderLimits(timeout_s=timeout_s)
    if refresh and is_stale(workspace):
        try:
            refresh_catalog(workspace, search_index=search_index, progress=progress, wait_s=0)
        except CatalogBusy as error:
            if not workspace.database.exists():
                raise
            warnings.warn(f"reading the catalog as it is, without the latest extraction: {error}", stacklevel=2)
    if not workspace.database.exists():
        raise CatalogMissing(
            f"no catalog database at {workspace.database}; run `workbench extract` and "
            f"`workbench catalog refresh --workspace {workspace.root}`"
        )
    identity = _file_identity(workspace.database)
    try:
        connection = _locked_connection(workspace.database, workspace.tmp / "duckdb-spill", limits)
    except (duckdb.IOException, duckdb.BinderException, duckdb.ConnectionException, FileNotFoundError) as error:
        raise CatalogBusy(f"cannot open {workspace.database} for reading ({error})") from error
    if not connection.execute(sql.RELATION_EXISTS, ["figures"]).fetchone()[0]:
        connection.close()
        raise CatalogMissing(
            f"{workspace.database} has no figures table; run `workbench catalog refresh --workspace {workspace.root}`"
        )
    return Catalog(workspace, connection, limits.timeout_s, has_text_index(workspace), limits, _identity=identity)

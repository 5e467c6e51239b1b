"""Build WS/catalog.duckdb, the catalog's read cache, from the Parquet truth — without ever blocking a reader.

`refresh_catalog` works on a copy: it copies the current file (only when part of it stays valid), replaces
the stale tables in the copy, checkpoints it and renames it over `catalog.duckdb`. Readers that had the old
file open keep reading it; new readers (and open `Catalog`s, on their next query) see the new one. Two
refreshes take turns through a lock; a refresh that finds everything current writes nothing.

What makes a table stale: the Parquet file's size/mtime (extraction rewrites them atomically), the content
digest of WS/catalog/pubmed.parquet (MeSH terms are taken from the current enrichment at refresh time),
the annotation events' fingerprint (WS/state/annotations.sqlite), and the name and size/mtime of the current
clustering's assignments and of WS/catalog/near_duplicates.parquet (columns `cluster_id`, `near_duplicate_of`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import yaml

from workbench.catalog import sql, textindex
from workbench.catalog.labels import AnnotationStore
from workbench.catalog.progress import run_with_progress
from workbench.cluster.assign import assignments_path, current_clustering
from workbench.cluster.duplicates import near_duplicates_path
from workbench.duckdb_extensions import load_extension
from workbench.enrich.store import pubmed_fingerprint
from workbench.errors import ResourceBusy
from workbench.fileio import fsync_file, fsync_folder
from workbench.licenses import DATA_CATALOG
from workbench.locks import exclusive_lock
from workbench.storage import connect_duckdb
from workbench.workspace import Workspace

MATERIALISATION_VERSION = 5  # bump when the materialised tables change shape: forces a rebuild
PARQUET_TABLES = ("figures", "articles", "errors")
SEARCH_STATE = "search_index"
_BUILD_PREFIX = ".catalog.duckdb.build-"
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


class CatalogMissing(FileNotFoundError):
    """The workspace has no extracted catalog yet."""


class CatalogBusy(ResourceBusy):
    """Another process is refreshing the catalog (or holds a file this one needs)."""


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


def parquet_path(workspace: Workspace, table: str) -> Path:
    return workspace.catalog_dir / f"{table}.parquet"


def parquet_fingerprint(path: Path) -> str:
    """Size and modification time of a Parquet file (extraction rewrites it atomically when it changes)."""
    if not path.exists():
        return "absent"
    stat = path.stat()
    return f"v{MATERIALISATION_VERSION}:{stat.st_size}:{stat.st_mtime_ns}"


def group_paths(workspace: Workspace) -> tuple[Path | None, Path | None]:
    """The current clustering's assignments and the near-duplicates Parquet, each None when absent."""
    name = current_clustering(workspace)
    near = near_duplicates_path(workspace)
    return (assignments_path(workspace, name) if name else None), (near if near.is_file() else None)


def wanted_state(workspace: Workspace) -> dict[str, str]:
    """The fingerprint each cached table must carry to be current."""
    figures = parquet_fingerprint(parquet_path(workspace, "figures"))
    pubmed = pubmed_fingerprint(workspace) or "none"
    clusters, near = group_paths(workspace)
    groups = f"clusters:{clusters and clusters.stem}:{parquet_fingerprint(clusters) if clusters else 'none'}"
    groups += f"|near:{parquet_fingerprint(near) if near else 'none'}"
    return {
        "figures": f"{figures}|annotations:{AnnotationStore(workspace).fingerprint()}|pubmed:{pubmed}|{groups}",
        "articles": parquet_fingerprint(parquet_path(workspace, "articles")),
        "errors": parquet_fingerprint(parquet_path(workspace, "errors")),
    }


def cached_state(database: Path) -> dict[str, str] | None:
    """The fingerprints recorded in a cache file, None when there is no readable one."""
    if not database.is_file():
        return None
    try:
        connection = connect_duckdb(database, read_only=True, wait_s=0)
        with connection:
            return _state(connection)
    except (ResourceBusy, duckdb.Error):
        return None  # unreadable (damaged, foreign): a rebuildable cache, so the next refresh builds it afresh


def is_stale(workspace: Workspace) -> bool:
    """Whether the cached tables or the search index lag behind the Parquet files, MeSH or annotations."""
    current = cached_state(workspace.database)
    if not current:
        return True
    wanted = wanted_state(workspace)
    if textindex.has_text_index(workspace) and not textindex.is_current(workspace):
        return True  # (a workspace refreshed without a text index on purpose has none)
    return any(current.get(name) != value for name, value in wanted.items())


def refresh_catalog(
    workspace: Workspace | str | Path,
    *,
    search_index: bool = True,
    progress: bool = True,
    memory_limit: str | None = None,
    compact: bool = False,
    wait_s: float | None = None,
) -> RefreshReport:
    """Bring WS/catalog.duckdb up to date with WS/catalog/*.parquet, MeSH and annotations; idempotent.

    Works on a copy swapped in at the end (see the module docstring), so readers are never blocked and an
    interrupted refresh leaves the previous file. `wait_s` bounds the wait for another refresh (None: wait
    until it ends, then find the work done). `memory_limit` (e.g. "6GB") caps DuckDB's memory; it spills to
    disk beyond that. `compact=True` rewrites the file without free blocks when more than a quarter is free.
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    if not parquet_path(workspace, "figures").exists():
        raise CatalogMissing(
            f"no catalog at {parquet_path(workspace, 'figures')}; run `workbench extract --workspace "
            f"{workspace.root}` first"
        )
    busy = f"another process is refreshing {workspace.database}; readers see the previous state meanwhile"
    try:
        with exclusive_lock(workspace.locks / "catalog-refresh.lock", busy, wait_s=wait_s):
            return _refresh_locked(workspace, search_index, progress, memory_limit, compact)
    except ResourceBusy as error:
        raise CatalogBusy(str(error)) from error


def _refresh_locked(
    workspace: Workspace, search_index: bool, progress: bool, memory_limit: str | None, compact: bool
) -> RefreshReport:
    for leftover in workspace.root.glob(_BUILD_PREFIX + "*"):  # an interrupted refresh (we hold the lock)
        leftover.unlink(missing_ok=True)
    wanted = wanted_state(workspace)
    current = cached_state(workspace.database) or {}
    stale = [table for table in PARQUET_TABLES if current.get(table) != wanted[table]]
    legacy_index = SEARCH_STATE in current  # a DuckDB fts index from before the text index: dropped
    text_work = search_index or textindex.has_text_index(workspace)
    if not stale and not legacy_index and not compact:
        return _report(workspace, _update_text(workspace, text_work, progress))
    build = workspace.root / f"{_BUILD_PREFIX}{os.getpid()}"
    try:
        if len(stale) < len(PARQUET_TABLES):
            shutil.copyfile(workspace.database, build)  # keep what is still valid; copy_file_range/sendfile
        rebuilt = _build(build, workspace, stale, wanted, legacy_index, progress, memory_limit)
        compacted = compact and _compact(build, workspace, progress)
        fsync_file(build)
        os.replace(build, workspace.database)
        fsync_folder(workspace.root)
    finally:
        build.unlink(missing_ok=True)
        build.with_name(build.name + ".wal").unlink(missing_ok=True)
    return _report(workspace, (*rebuilt, *_update_text(workspace, text_work, progress)), compacted)


def _update_text(workspace: Workspace, wanted: bool, progress: bool) -> tuple[str, ...]:
    """Bring the BM25 text index (WS/indexes/text) up to date, incrementally; names it when it changed."""
    if not wanted:
        return ()
    report = textindex.update_text_index(workspace, progress=progress)
    return (SEARCH_STATE,) if report.rebuilt or report.added or report.deleted else ()


def _build(
    build: Path,
    workspace: Workspace,
    stale: list[str],
    wanted: dict[str, str],
    legacy_index: bool,
    progress: bool,
    memory_limit: str | None,
) -> list[str]:
    config = {"memory_limit": memory_limit} if memory_limit else {}
    rebuilt: list[str] = []
    with connect_duckdb(build, read_only=False, config=config) as connection:
        connection.execute("SET enable_progress_bar_print = false")  # tqdm bars instead (run_with_progress)
        connection.execute(sql.CREATE_STATE)
        for table in stale:
            connection.execute("BEGIN TRANSACTION")
            _materialise(connection, workspace, table, progress)
            connection.execute(sql.WRITE_STATE, [table, wanted[table]])
            connection.execute("COMMIT")
            rebuilt.append(table)
        if legacy_index:
            connection.execute(sql.DROP_SEARCH_INDEX)
            connection.execute("DELETE FROM catalog_state WHERE name = ?", [SEARCH_STATE])
        connection.execute("CHECKPOINT")
    return rebuilt


def _materialise(connection: duckdb.DuckDBPyConnection, workspace: Workspace, table: str, progress: bool) -> None:
    path = parquet_path(workspace, table)
    if table != "figures":
        if path.exists():
            run_with_progress(
                connection, sql.MATERIALISE_TABLE[table], {"path": str(path)}, label=table, progress=progress
            )
        else:
            connection.execute(sql.EMPTY_TABLE[table].format(columns=_schema_columns(table)))
        return
    store = AnnotationStore(workspace)
    store.ensure()
    load_extension(connection, "sqlite")
    connection.execute(sql.MATERIALISE_ANNOTATIONS, [str(store.path)])
    labelled = connection.execute("SELECT count(*) FROM annotations").fetchone()[0]
    pubmed = workspace.catalog_dir / "pubmed.parquet"
    source, params = sql.FIGURES_SOURCE, {"path": str(path)}
    if pubmed.is_file():
        source, params = sql.FIGURES_SOURCE_WITH_MESH, {"path": str(path), "pubmed": str(pubmed)}
    source = _with_groups(workspace, source, params)
    if not labelled:
        statement = sql.MATERIALISE_FIGURES_UNLABELLED.format(source=source)
        run_with_progress(connection, statement, params, label="figures", progress=progress)
        connection.execute("DROP TABLE IF EXISTS figure_labels")
    else:
        run_with_progress(connection, sql.MATERIALISE_LABELS, label="annotation labels", progress=progress)
        sort, align, glue, *drops = sql.MATERIALISE_FIGURES_LABELLED
        run_with_progress(connection, sort.format(source=source), params, label="figures: sort", progress=progress)
        run_with_progress(connection, align, label="figures: align labels", progress=progress)
        run_with_progress(connection, glue, label="figures: add labels", progress=progress)
        for drop in drops:
            connection.execute(drop)
    run_with_progress(connection, sql.MATERIALISE_VOCABULARY, label="figures: vocabulary", progress=progress)


def _with_groups(workspace: Workspace, base: str, params: dict[str, str]) -> str:
    """`base` with the cluster_id and near_duplicate_of columns joined in (adds their paths to `params`)."""
    clusters, near = group_paths(workspace)
    if clusters:
        params["clusters"] = str(clusters)
    if near:
        params["near_duplicates"] = str(near)
    return sql.FIGURES_WITH_GROUPS.format(
        base=base,
        clusters=sql.CLUSTERS_PARQUET if clusters else sql.NO_CLUSTERS,
        near_duplicates=sql.NEAR_DUPLICATES_PARQUET if near else sql.NO_NEAR_DUPLICATES,
    )


@cache
def _schema_columns(table: str) -> str:
    columns = yaml.safe_load((DATA_CATALOG / "schemas" / f"{table}.yaml").read_text())["columns"]
    return ", ".join(f'"{name}" {_DUCKDB_TYPES[spec["type"]]}' for name, spec in columns.items())


def _state(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    if not connection.execute(sql.TABLE_EXISTS, ["catalog_state"]).fetchone()[0]:
        return {}
    return dict(connection.execute(sql.READ_STATE).fetchall())


def _compact(build: Path, workspace: Workspace, progress: bool) -> bool:
    """Rewrite the build without free blocks when more than a quarter of it is free; True when it did."""
    with connect_duckdb(build, read_only=False) as connection:
        total, free = connection.execute(sql.DATABASE_BLOCKS).fetchone()
        if not total or free / total <= 0.25:
            return False
        copy = build.with_name(build.name + ".compact")
        copy.unlink(missing_ok=True)
        connection.execute(f"ATTACH '{_quoted(copy)}' AS compacted")  # ATTACH takes no parameters
        name = connection.execute("SELECT current_database()").fetchone()[0]
        statement = sql.COMPACT_INTO.format(database='"' + name.replace('"', '""') + '"')
        run_with_progress(connection, statement, label="compact", progress=progress)
        connection.execute("DETACH compacted")
    os.replace(copy, build)
    return True


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _report(workspace: Workspace, rebuilt: tuple[str, ...], compacted: bool = False) -> RefreshReport:
    with connect_duckdb(workspace.database, read_only=True) as connection:
        figures = connection.execute("SELECT count(*) FROM figures").fetchone()[0]
        articles = connection.execute("SELECT count(*) FROM articles").fetchone()[0]
    return RefreshReport(rebuilt, int(figures), int(articles), textindex.has_text_index(workspace), compacted)

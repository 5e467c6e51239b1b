"""Build the catalog's read cache from the Parquet truth — incrementally, and without ever blocking a reader.

The cache has two layers (see `workbench.catalog.layers`): an immutable base file holding the sorted `figures`
table, and the root file WS/catalog.duckdb holding the delta since the base, the small tables (articles,
errors, vocabulary, near-duplicate groups) and the view `figures`. Each figure's cluster in the current
clustering is a column of both layers (`cluster_id`), so label filters and per-cluster counts are column scans.
`refresh_catalog` works on a copy of the root (small), changes what is stale, checkpoints it and renames it
over `catalog.duckdb`; a full build first writes a new base. Readers that had the old files open keep
reading them; new readers (and open `Catalog`s, on their next query) see the new ones. Two refreshes take
turns through a lock; a refresh that finds everything current writes nothing; kill -9 leaves the previous
state (the next refresh removes the leftovers).

What makes a layer stale: the extraction manifest's units and superseded pairs (new units are applied to the
delta; anything else rebuilds the base), figures.parquet's size/mtime when there is no manifest, the content
digest of WS/catalog/pubmed.parquet (MeSH terms are taken from the current enrichment at refresh time), and
the name and size/mtime of the current clustering's assignments (the same clustering grown by `cluster assign`
moves only the figures whose cluster changed into the delta; another clustering moves most of them, so a new
base is built when they pass the fold threshold) and of WS/catalog/near_duplicates.parquet.
Annotation labels are not in the cache: filters read them at query time.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from workbench.catalog import layers, sql, textindex
from workbench.catalog.progress import run_with_progress
from workbench.cluster.assign import assignments_path, current_clustering
from workbench.cluster.duplicates import near_duplicates_path
from workbench.enrich.store import pubmed_fingerprint
from workbench.errors import ResourceBusy
from workbench.fileio import fsync_file, fsync_folder
from workbench.locks import exclusive_lock
from workbench.storage import connect_duckdb
from workbench.workspace import Workspace

MATERIALISATION_VERSION = 8  # bump when the materialised tables change shape: forces a rebuild
SMALL_TABLES = ("articles", "errors")
LAYERS = ("figures", "clusters", "near_duplicates", *SMALL_TABLES)  # each with its fingerprint in the state
SEARCH_STATE = "search_index"
UNITS_STATE = "figures_units"
_BUILD_PREFIX = ".catalog.duckdb.build-"
MAX_DELTA_SHARE = 0.25  # a delta above this share of the base (and above MIN_FOLD_ROWS) is folded into a new base
MIN_FOLD_ROWS = 200_000


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
    incremental_rows: int | None = None  # rows written to the delta by an incremental refresh, else None

    def describe(self) -> str:
        what = f"rebuilt {', '.join(self.rebuilt)}" if self.rebuilt else "catalog already up to date"
        if self.incremental_rows is not None:
            what += f" (incremental: {self.incremental_rows} rows added or replaced)"
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


def _pubmed(workspace: Workspace) -> Path | None:
    path = workspace.catalog_dir / "pubmed.parquet"
    return path if path.is_file() else None


def wanted_state(workspace: Workspace) -> dict[str, str]:
    """The fingerprint each cached layer must carry to be current."""
    source = layers.figure_source(workspace, parquet_fingerprint(parquet_path(workspace, "figures")))
    figures = f"v{MATERIALISATION_VERSION}|{source.fingerprint}|pubmed:{pubmed_fingerprint(workspace) or 'none'}"
    clusters, near = group_paths(workspace)
    return {
        "figures": figures,
        "clusters": f"{clusters.stem}:{parquet_fingerprint(clusters)}" if clusters else "none",
        "near_duplicates": parquet_fingerprint(near) if near else "none",
        "articles": parquet_fingerprint(parquet_path(workspace, "articles")),
        "errors": parquet_fingerprint(parquet_path(workspace, "errors")),
    }


def cached_state(database: Path) -> dict[str, str] | None:
    """The fingerprints recorded in a cache file, None when there is no readable one (or its base is gone)."""
    if not database.is_file():
        return None
    try:
        connection = connect_duckdb(database, read_only=True, wait_s=0)
        with connection:
            state = _state(connection)
            base = state.get("base")
            return state if base and (database.parent / base).is_file() else None
    except (ResourceBusy, duckdb.Error):
        return None  # unreadable (damaged, foreign): a rebuildable cache, so the next refresh builds it afresh


def is_stale(workspace: Workspace) -> bool:
    """Whether the cached layers or the search index lag behind the Parquet files or MeSH."""
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
    full: bool = False,
) -> RefreshReport:
    """Bring the catalog cache up to date with WS/catalog/*.parquet and MeSH; idempotent.

    New extraction units enter incrementally (the delta); `full=True` rebuilds the base from figures.parquet
    regardless. Works on a copy of the root swapped in at the end (see the module docstring), so readers are
    never blocked and an interrupted refresh leaves the previous state. `wait_s` bounds the wait for another
    refresh (None: wait until it ends, then find the work done). `memory_limit` (e.g. "6GB") caps DuckDB's
    memory; it spills to disk beyond that. `compact=True` rewrites the root without free blocks when more than a
    quarter of it is free.
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
            return _refresh_locked(workspace, search_index, progress, memory_limit, compact, full)
    except ResourceBusy as error:
        raise CatalogBusy(str(error)) from error


def _refresh_locked(
    workspace: Workspace, search_index: bool, progress: bool, memory_limit: str | None, compact: bool, full: bool
) -> RefreshReport:
    current = cached_state(workspace.database) or {}
    for leftover in workspace.root.glob(_BUILD_PREFIX + "*"):  # an interrupted refresh (we hold the lock)
        leftover.unlink(missing_ok=True)
    layers.remove_stale_bases(workspace, {current.get("base", ""), current.get("previous_base", "")})
    wanted = wanted_state(workspace)
    stale = [name for name in LAYERS if full or current.get(name) != wanted[name]]
    legacy_index = SEARCH_STATE in current  # a DuckDB fts index from before the text index: dropped
    text_work = search_index or textindex.has_text_index(workspace)
    if not stale and not legacy_index and not compact:
        return _report(workspace, _update_text(workspace, text_work, progress))
    config = {"memory_limit": memory_limit} if memory_limit else {}
    plan = _plan(workspace, current, wanted, full)
    build = workspace.root / f"{_BUILD_PREFIX}{os.getpid()}"
    new_base = None
    try:
        if plan is None:  # a new base, then a fresh root over it
            new_base = layers.new_base_path(workspace)
            source, params = _figures_source(workspace)
            rows = _parquet_rows(parquet_path(workspace, "figures"))
            layers.build_base(new_base, source, params, group_paths(workspace)[0], progress, config, rows)
            stale = list(LAYERS)
        else:
            shutil.copyfile(workspace.database, build)  # the root: small (copy_file_range/sendfile)
        rebuilt, rows = _build(build, workspace, stale, wanted, current, plan, new_base, legacy_index, progress, config)
        compacted = compact and _compact(build, progress)
        fsync_file(build)
        os.replace(build, workspace.database)
        fsync_folder(workspace.root)
    except BaseException:
        if new_base is not None:
            new_base.unlink(missing_ok=True)
        raise
    finally:
        build.unlink(missing_ok=True)
        build.with_name(build.name + ".wal").unlink(missing_ok=True)
    return _report(workspace, (*rebuilt, *_update_text(workspace, text_work, progress)), compacted, rows)


def _update_text(workspace: Workspace, wanted: bool, progress: bool) -> tuple[str, ...]:
    """Bring the BM25 text index (WS/indexes/text) up to date, incrementally; names it when it changed."""
    if not wanted:
        return ()
    report = textindex.update_text_index(workspace, progress=progress)
    return (SEARCH_STATE,) if report.rebuilt or report.added or report.deleted else ()


def _plan(
    workspace: Workspace, current: dict[str, str], wanted: dict[str, str], full: bool
) -> tuple[set[str], set[tuple[str, str | None]]] | None:
    """The units/pairs the cache holds when the change can be applied to the delta; None: build a new base."""
    if full or not current or not current.get("figures"):
        return None
    if current["figures"].split("|", 1)[0] != wanted["figures"].split("|", 1)[0]:
        return None  # another materialisation version: the base itself changed shape
    source = _source(workspace)
    before = layers.recorded_source(current.get(UNITS_STATE))
    if current["figures"] == wanted["figures"]:
        before = before or (set(), set())
    else:
        same_pubmed = current["figures"].rsplit("|pubmed:", 1)[-1] == wanted["figures"].rsplit("|pubmed:", 1)[-1]
        if not source.incremental or before is None or not same_pubmed:
            return None
        units, superseded = before
        if not units <= set(source.units) or not superseded <= set(source.superseded):
            return None  # units or supersessions went away: only a new base says what is left
    another_clustering = _clustering_name(current) != _clustering_name(wanted)
    if current["figures"] == wanted["figures"] and not another_clustering:
        return before
    with open_cache(workspace.database) as connection:
        delta, base = layers.delta_rows(connection, layers.new_parts(workspace, source, before[0]))
        if another_clustering:  # every figure of the old and of the new clustering may move
            delta += connection.execute(sql.CLUSTERED_BASE_ROWS).fetchone()[0]
            assignments = group_paths(workspace)[0]
            delta += _parquet_rows(assignments) if assignments else 0
        if delta > MIN_FOLD_ROWS and delta > MAX_DELTA_SHARE * base:
            return None  # fold the delta into a new base
    return before


def _clustering_name(state: dict[str, str]) -> str:
    return (state.get("clusters") or "none").split(":", 1)[0]


def _parquet_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows if path.is_file() else 0


def _figures_source(workspace: Workspace) -> tuple[str, dict[str, str]]:
    params = {"path": str(parquet_path(workspace, "figures"))}
    pubmed = _pubmed(workspace)
    if pubmed:
        return sql.FIGURES_SOURCE_WITH_MESH, params | {"pubmed": str(pubmed)}
    return sql.FIGURES_SOURCE, params


def _build(
    build: Path,
    workspace: Workspace,
    stale: list[str],
    wanted: dict[str, str],
    current: dict[str, str],
    plan: tuple[set[str], set[tuple[str, str | None]]] | None,
    new_base: Path | None,
    legacy_index: bool,
    progress: bool,
    config: dict[str, str],
) -> tuple[list[str], int | None]:
    rebuilt: list[str] = []
    rows = None
    with connect_duckdb(build, read_only=False, config=config) as connection:
        connection.execute("SET enable_progress_bar_print = false")  # tqdm bars instead (run_with_progress)
        connection.execute(sql.CREATE_STATE)
        if new_base is not None:
            connection.execute(sql.WRITE_STATE, ["previous_base", current.get("base", "")])
            layers.attach_base_file(connection, new_base)
            connection.execute("BEGIN TRANSACTION")
            layers.start_root(connection, new_base.name)
            run_with_progress(connection, sql.MATERIALISE_VOCABULARY, label="figures: vocabulary", progress=progress)
        else:
            layers.attach_base(connection, build)
            connection.execute("BEGIN TRANSACTION")
        assignments = group_paths(workspace)[0]
        if "figures" in stale and plan is not None:
            source, pubmed = _source(workspace), _pubmed(workspace)
            rows = layers.apply_increment(connection, workspace, source, plan, pubmed, assignments, progress)
        if "clusters" in stale and plan is not None:
            moved = layers.apply_memberships(connection, assignments, progress)
            rows = (rows or 0) + moved
        if "clusters" in stale:
            connection.execute(sql.WRITE_STATE, ["clusters", wanted["clusters"]])
            connection.execute(sql.DROP_CLUSTERS_TABLE)
            rebuilt.append("clusters")
        if "figures" in stale:
            connection.execute(sql.WRITE_STATE, ["figures", wanted["figures"]])
            connection.execute(sql.WRITE_STATE, [UNITS_STATE, _source(workspace).recorded()])
            rebuilt.append("figures")
        connection.execute("COMMIT")
        for table in stale:
            if table in ("figures", "clusters"):
                continue
            connection.execute("BEGIN TRANSACTION")
            _materialise(connection, workspace, table, progress)
            connection.execute(sql.WRITE_STATE, [table, wanted[table]])
            if table == "near_duplicates":
                connection.execute(sql.GROUPED_VIEW)
            connection.execute("COMMIT")
            rebuilt.append(table)
        if legacy_index and new_base is None:
            connection.execute(sql.DROP_SEARCH_INDEX)
            connection.execute("DELETE FROM catalog_state WHERE name = ?", [SEARCH_STATE])
        connection.execute("CHECKPOINT")
    return rebuilt, rows


def _source(workspace: Workspace) -> layers.FigureSource:
    return layers.figure_source(workspace, parquet_fingerprint(parquet_path(workspace, "figures")))


def _materialise(connection: duckdb.DuckDBPyConnection, workspace: Workspace, table: str, progress: bool) -> None:
    if table == "near_duplicates":
        near = group_paths(workspace)[1]
        if near:
            statement = sql.MATERIALISE_NEAR_DUPLICATES
            run_with_progress(connection, statement, {"path": str(near)}, label="near-duplicates", progress=progress)
        else:
            connection.execute(sql.EMPTY_NEAR_DUPLICATES)
        return
    path = parquet_path(workspace, table)
    if path.exists():
        run_with_progress(connection, sql.MATERIALISE_TABLE[table], {"path": str(path)}, label=table, progress=progress)
    else:
        connection.execute(sql.EMPTY_TABLE[table].format(columns=_schema_columns(table)))


def _schema_columns(table: str) -> str:
    import yaml

    from workbench.licenses import DATA_CATALOG

    columns = yaml.safe_load((DATA_CATALOG / "schemas" / f"{table}.yaml").read_text())["columns"]
    types = layers._DUCKDB_TYPES  # noqa: SLF001 - the same mapping
    return ", ".join(f'"{name}" {types[spec["type"]]}' for name, spec in columns.items())


def _state(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    if not connection.execute(sql.TABLE_EXISTS, ["catalog_state"]).fetchone()[0]:
        return {}
    return dict(connection.execute(sql.READ_STATE).fetchall())


def _compact(build: Path, progress: bool) -> bool:
    """Rewrite the root without free blocks when more than a quarter of it is free; True when it did."""
    with connect_duckdb(build, read_only=False) as connection:
        layers.attach_base(connection, build)
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


def open_cache(database: Path) -> duckdb.DuckDBPyConnection:
    """The root opened read-only with its base attached (what `figures` reads)."""
    connection = connect_duckdb(database, read_only=True)
    try:
        layers.attach_base(connection, database)
    except BaseException:
        connection.close()
        raise
    return connection


def _report(
    workspace: Workspace, rebuilt: tuple[str, ...], compacted: bool = False, rows: int | None = None
) -> RefreshReport:
    with open_cache(workspace.database) as connection:
        figures = connection.execute("SELECT count(*) FROM figures").fetchone()[0]
        articles = connection.execute("SELECT count(*) FROM articles").fetchone()[0]
    has_index = textindex.has_text_index(workspace)
    return RefreshReport(rebuilt, int(figures), int(articles), has_index, compacted, rows)

"""The two layers of the catalog's read cache: an immutable base file and a small delta in the root file.

A full build writes `figures` (every current row, sorted for zone maps) into a new base file
WS/catalog.base-TOKEN.duckdb. An incremental refresh leaves the base alone: rows of new extraction parts go
into `figures_delta` of the root file (WS/catalog.duckdb), base rows they replace into `figures_removed`, and
the view `figures` reads both. Its cost follows the change, not the catalog: the root file is small.

Which parts exist comes from the extraction manifest (WS/catalog/_extract_manifest.json: complete units and
superseded (unit, pmcid) pairs); `FigureSource` is that, or just figures.parquet when there is no manifest.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from workbench.catalog import sql
from workbench.catalog.progress import run_with_progress
from workbench.extract.catalog import part_path
from workbench.fileio import CorruptFile, read_json
from workbench.licenses import DATA_CATALOG
from workbench.workspace import Workspace

BASE_PREFIX = "catalog.base-"
MANIFEST = "_extract_manifest.json"
GROUPED_BUILD_ROWS = 4_000_000  # bases of more figures are written one licence group at a time
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


@dataclass(frozen=True)
class FigureSource:
    """What the figures of the cache come from: the extraction's complete units and superseded pairs."""

    units: tuple[str, ...]
    superseded: tuple[tuple[str, str | None], ...]
    fingerprint: str  # changes with any of the above (or with figures.parquet itself without a manifest)

    @property
    def incremental(self) -> bool:
        return bool(self.units)

    def recorded(self) -> str:
        """JSON recorded in the cache state, diffed by the next refresh."""
        return json.dumps({"units": list(self.units), "superseded": [list(pair) for pair in self.superseded]})


def figure_source(workspace: Workspace, figures_fingerprint: str) -> FigureSource:
    """The extraction manifest's units, or figures.parquet alone (`figures_fingerprint`) without one."""
    try:
        manifest = read_json(workspace.catalog_dir / MANIFEST, default=lambda: None)
    except CorruptFile:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("units"), list) or not manifest["units"]:
        return FigureSource((), (), f"file:{figures_fingerprint}")
    units = tuple(sorted(str(unit) for unit in manifest["units"]))
    superseded = tuple(sorted((str(unit), pmcid) for unit, pmcid in manifest.get("superseded") or []))
    digest = hashlib.sha256(json.dumps([units, superseded]).encode()).hexdigest()[:24]
    return FigureSource(units, superseded, f"units:{len(units)}:{digest}")


def recorded_source(text: str | None) -> tuple[set[str], set[tuple[str, str | None]]] | None:
    """Units and superseded pairs a cache state recorded, None when it recorded none."""
    try:
        data = json.loads(text or "")
    except json.JSONDecodeError:
        return None
    return set(data["units"]), {(unit, pmcid) for unit, pmcid in data["superseded"]}


@cache
def schema_columns() -> dict[str, str]:
    """Column name -> DuckDB type of data_catalog/schemas/figures.yaml, in order."""
    columns = yaml.safe_load((DATA_CATALOG / "schemas" / "figures.yaml").read_text())["columns"]
    return {name: _DUCKDB_TYPES[spec["type"]] for name, spec in columns.items()}


def _column_list(prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{name}"' for name in schema_columns())


def assignments_fragment(assignments: Path | None) -> tuple[str, dict[str, str]]:
    """The current clustering's (key, cluster_id) as a FROM fragment and its parameters (none: no rows)."""
    if assignments is None:
        return sql.NO_ASSIGNMENTS, {}
    return sql.ASSIGNMENTS, {"assignments": str(assignments)}


def new_base_path(workspace: Workspace) -> Path:
    return workspace.root / f"{BASE_PREFIX}{secrets.token_hex(6)}.duckdb"


def build_base(
    path: Path,
    source: str,
    params: dict[str, str],
    assignments: Path | None,
    progress: bool,
    config: dict[str, str],
    rows: int = 0,
) -> None:
    """Write `figures` from `source` (a FROM fragment over Parquet) and each figure's cluster into a new base file,
    sorted, zstd texts. Above GROUPED_BUILD_ROWS `rows` it is written one licence group at a time, so each sort
    holds a share of the rows (one sort of 24M wide rows spilled 18 GB)."""
    definitions = ", ".join(
        f'"{name}" {kind}' + (" USING COMPRESSION zstd" if name in sql.ZSTD_COLUMNS else "")
        for name, kind in schema_columns().items()
    )
    fragment, extra = assignments_fragment(assignments)
    params = {**params, **extra}
    options = {**config, "storage_compatibility_version": "latest"}
    with duckdb.connect(str(path), config=options) as connection:
        connection.execute("SET enable_progress_bar_print = false")
        connection.execute(sql.CREATE_BASE.format(columns=definitions))
        filled = {"columns": _column_list("source."), "source": source, "assignments": fragment}
        if rows <= GROUPED_BUILD_ROWS:
            statement = sql.FILL_BASE_ALL.format(**filled)
            run_with_progress(connection, statement, params, label="figures (base)", progress=progress)
        else:
            only_source = {name: value for name, value in params.items() if name != "assignments"}
            groups = [
                row[0] for row in connection.execute(sql.BASE_GROUPS.format(source=source), only_source).fetchall()
            ]
            for group in groups:
                statement = sql.FILL_BASE_GROUP.format(**filled)
                label = f"figures (base, {group or 'no licence group'})"
                run_with_progress(connection, statement, params | {"group": group}, label=label, progress=progress)
        run_with_progress(connection, sql.KEY_DIRECTORY, label="key directory", progress=progress)
        connection.execute("CHECKPOINT")


def attach_base(connection: duckdb.DuckDBPyConnection, root: Path) -> None:
    """ATTACH the base file the root names (read-only) under the alias the `figures` view expects."""
    row = connection.execute(sql.BASE_NAME).fetchone()
    if not row:
        raise FileNotFoundError(f"{root} names no base file; run `workbench catalog refresh --full`")
    attach_base_file(connection, root.parent / row[0])


def attach_base_file(connection: duckdb.DuckDBPyConnection, base: Path) -> None:
    # ATTACH takes no parameters; the path is the workspace's own file, quoted.
    connection.execute(f"ATTACH '{str(base).replace(chr(39), chr(39) * 2)}' AS {sql.BASE_ALIAS} (READ_ONLY)")


def delta_rows(connection: duckdb.DuckDBPyConnection, incoming: list[Path]) -> tuple[int, int]:
    """(Delta rows + rows of the `incoming` parts, base rows): when to fold the delta into a new base."""
    delta, _ = connection.execute(sql.DELTA_ROWS).fetchone()
    base = connection.execute(sql.BASE_ROWS).fetchone()[0]
    added = sum(pq.ParquetFile(path).metadata.num_rows for path in incoming if path.is_file())
    return int(delta + added), int(base)


def new_parts(workspace: Workspace, source: FigureSource, units: set[str]) -> list[Path]:
    return [part_path(workspace, "figures", unit) for unit in source.units if unit not in units]


def start_root(connection: duckdb.DuckDBPyConnection, base_name: str) -> None:
    """A fresh root over a new base: empty delta and removals, the view, the vocabulary of the base."""
    connection.execute(sql.WRITE_STATE, ["base", base_name])
    connection.execute(sql.CREATE_DELTA)
    connection.execute(sql.CREATE_REMOVED)
    connection.execute(sql.FIGURES_VIEW)


def set_view(connection: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(Re)create `figures` (without the anti-join while nothing was removed); returns (delta rows, removed)."""
    delta, removed = connection.execute(sql.DELTA_ROWS).fetchone()
    connection.execute(sql.FIGURES_VIEW_WITH_REMOVALS if removed else sql.FIGURES_VIEW)
    return int(delta), int(removed)


def apply_increment(
    connection: duckdb.DuckDBPyConnection,
    workspace: Workspace,
    source: FigureSource,
    before: tuple[set[str], set[tuple[str, str | None]]],
    pubmed: Path | None,
    assignments: Path | None,
    progress: bool,
) -> int:
    """Bring the root's delta from the `before` units/superseded pairs to `source`'s (new rows take their cluster
    from `assignments`); returns rows written."""
    old_units, old_superseded = before
    new_units = [unit for unit in source.units if unit not in old_units]
    parts = [str(part_path(workspace, "figures", unit)) for unit in new_units]
    parts = [part for part in parts if Path(part).is_file()]
    pairs = [(str(part_path(workspace, "figures", unit)), pmcid) for unit, pmcid in source.superseded]
    connection.register(
        "superseded",
        pa.table(
            {"part": [p for p, _ in pairs], "pmcid": [c for _, c in pairs]},
            schema=pa.schema([("part", pa.string()), ("pmcid", pa.string())]),
        ),
    )
    gone = sorted({pmcid for unit, pmcid in set(source.superseded) - old_superseded if unit in old_units and pmcid})
    connection.register("gone", pa.table({"pmcid": pa.array(gone, pa.string())}))
    if parts:
        fragment, extra = assignments_fragment(assignments)
        statement = sql.INCOMING.format(
            columns=_column_list("source."),
            mesh=sql.INCOMING_MESH if pubmed else "NULL",
            mesh_join=sql.INCOMING_MESH_JOIN if pubmed else "",
            assignments=fragment,
        )
        params: dict[str, object] = {"parts": parts, **extra} | ({"pubmed": str(pubmed)} if pubmed else {})
        run_with_progress(connection, statement, params, label="figures: new parts", progress=progress)
    else:
        connection.execute("CREATE OR REPLACE TEMP TABLE incoming AS SELECT * FROM figures_delta LIMIT 0")
    for label, statement in (
        ("figures: replaced rows", sql.LEAVING),
        ("figures: duplicate groups", sql.REGROUPED),
        ("figures: regrouped rows", sql.REGROUPED_ROWS),
        ("figures: replaced rows", sql.REPLACED),
        ("figures: vocabulary", sql.VOCABULARY_CHANGE),
    ):
        run_with_progress(connection, statement, label=label, progress=progress)
    written = connection.execute("SELECT count(*) FROM regrouped").fetchone()[0]
    connection.execute(sql.APPLY_VOCABULARY)
    connection.execute(sql.APPLY_REMOVALS)
    connection.execute(sql.DELETE_FROM_DELTA)
    connection.execute(sql.APPLY_INSERTS)
    for table in ("incoming", "leaving", "regrouped_keys", "regrouped", "vocabulary_change"):
        connection.execute(f"DROP TABLE IF EXISTS {table}")  # fixed names
    connection.unregister("superseded")
    connection.unregister("gone")
    set_view(connection)
    return int(written)


def apply_memberships(connection: duckdb.DuckDBPyConnection, assignments: Path | None, progress: bool) -> int:
    """Bring every figure's cluster_id to the current clustering's `assignments`: delta rows in place, base rows
    as corrected copies in the delta. Returns the figures that moved."""
    fragment, params = assignments_fragment(assignments)
    run_with_progress(connection, sql.MOVED.format(assignments=fragment), params, label="clusters", progress=progress)
    moved = connection.execute("SELECT count(*) FROM moved").fetchone()[0]
    if moved:
        connection.execute(sql.MOVE_IN_DELTA)
        connection.execute(sql.MOVED_BASE)
        connection.execute(sql.MOVE_FROM_BASE)
        connection.execute(sql.MOVED_REMOVALS)
        connection.execute("DROP TABLE moved_base")
        set_view(connection)
    connection.execute("DROP TABLE moved")
    return int(moved)


def remove_stale_bases(workspace: Workspace, keep: set[str]) -> None:
    """Delete base files other than `keep` (the current and the previous one, which readers may still open)."""
    for path in workspace.root.glob(f"{BASE_PREFIX}*.duckdb*"):
        if path.name.split(".duckdb")[0] + ".duckdb" in keep:
            continue
        if path.is_dir():  # DuckDB's spill folder of an interrupted build
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

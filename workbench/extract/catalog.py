"""The Parquet catalog of extraction: per-work-unit parts, consolidated atomically into
`WS/catalog/{figures,articles,errors}.parquet` (columns per data_catalog/schemas/*.yaml)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from workbench.extract.discovery import open_workspace_database, pubmed_fingerprint
from workbench.fileio import write_parquet_atomically
from workbench.licenses import DATA_CATALOG
from workbench.workspace import Workspace

TABLES = ("figures", "articles", "errors")
_ARROW_TYPES = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "list<string>": pa.list_(pa.string()),
}
_ORDER = {"figures": "key", "articles": "pmcid, package", "errors": "package, stage, reason, detail, pmcid"}

# Named SQL templates. `$parts` is the list of part files; `superseded` a registered table of (part, pmcid)
# pairs whose rows a later work unit replaced (re-extracted articles). Values are always bound parameters; the
# `{...}` slots take only column names from data_catalog/schemas and the fragments below.
_CURRENT_ROWS = """
    SELECT parts.* EXCLUDE (filename)
    FROM read_parquet($parts, filename = true) AS parts
    ANTI JOIN superseded ON superseded.part = parts.filename AND superseded.pmcid IS NOT DISTINCT FROM parts.pmcid
"""
_FIGURES_SQL = """
    WITH current AS ({current}),
    mesh AS ({mesh})
    SELECT {columns}
    FROM (
        SELECT current.* REPLACE (
            CASE WHEN row_number() OVER same_image > 1 THEN first_value(key) OVER same_image END AS duplicate_of)
        FROM current
        WINDOW same_image AS (PARTITION BY image_sha256 ORDER BY key)
    ) AS current
    LEFT JOIN mesh ON mesh.pmid = current.pmid
    ORDER BY key
"""
_MESH_COLUMN = "coalesce(mesh.terms, current.article_mesh_terms, []::VARCHAR[]) AS article_mesh_terms"
_MESH_FROM_PUBMED = "SELECT pmid, any_value(mesh_terms) AS terms FROM pubmed GROUP BY pmid"
_NO_MESH = "SELECT NULL::VARCHAR AS pmid, NULL::VARCHAR[] AS terms WHERE false"
_TABLE_SQL = "WITH current AS ({current}) SELECT {columns} FROM current ORDER BY {order}"


@cache
def _columns(table: str) -> dict[str, dict[str, Any]]:
    return yaml.safe_load((DATA_CATALOG / "schemas" / f"{table}.yaml").read_text())["columns"]


@cache
def table_schema(table: str) -> pa.Schema:
    """Arrow schema of a catalog table, read from data_catalog/schemas/<table>.yaml."""
    fields = []
    for name, column in _columns(table).items():
        if column["type"] not in _ARROW_TYPES:
            raise ValueError(f"{table}.yaml: column {name!r} has unknown type {column['type']!r}")
        fields.append(pa.field(name, _ARROW_TYPES[column["type"]]))
    return pa.schema(fields)


@cache
def required_columns(table: str) -> frozenset[str]:
    """Columns every row must carry (not nullable, not a list that may default to empty)."""
    return frozenset(
        name
        for name, column in _columns(table).items()
        if not column.get("nullable", False) and column["type"] != "list<string>"
    )


def _coerce(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return [] if pa.types.is_list(kind) else None
    if kind == pa.date32() and isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    if kind == pa.timestamp("us") and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return value


def rows_to_table(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Arrow table with exactly the schema's columns (lists default to empty, other missing values to null);
    a missing required column is a contract error."""
    schema = table_schema(table)
    required = required_columns(table)
    lists = [field.name for field in schema if pa.types.is_list(field.type)]
    normalised = []
    for row in rows:
        missing = required - row.keys()
        if missing:
            raise ValueError(f"{table} row {row.get('key') or row.get('pmcid')!r} lacks columns {sorted(missing)}")
        empty = [name for name in lists if row.get(name) is None]
        normalised.append(dict(row, **dict.fromkeys(empty, ())) if empty else row)
    try:
        return pa.Table.from_pylist(normalised, schema=schema)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # e.g. dates given as ISO strings
        columns = {f.name: pa.array([_coerce(r.get(f.name), f.type) for r in normalised], f.type) for f in schema}
        return pa.table(columns, schema=schema)


def part_path(workspace: Workspace, table: str, unit_name: str) -> Path:
    """Where a work unit's rows of `table` live once the unit is complete."""
    return workspace.catalog_dir / "parts" / table / f"{unit_name}.parquet"


def write_parts(folder: Path, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Path]:
    """Write one Parquet file per table into `folder` (a work unit's scratch folder); returns their paths."""
    written = {}
    for table, rows in tables.items():
        path = folder / f"{table}.parquet"
        pq.write_table(rows_to_table(table, rows), path, compression="zstd")
        written[table] = path
    return written


@dataclass(frozen=True)
class Superseded:
    """Rows of article `pmcid` in the part of work unit `unit_name` were replaced by a later unit."""

    unit_name: str
    pmcid: str | None


@dataclass(frozen=True)
class CatalogSummary:
    figures: int
    articles: int
    errors: int
    duplicates: int
    mesh_filled: bool


def consolidate(
    workspace: Workspace, unit_names: Iterable[str], superseded: Iterable[Superseded] = ()
) -> CatalogSummary:
    """Rebuild figures/articles/errors.parquet from the parts of the given complete work units.

    Rows of superseded (unit, pmcid) pairs are left out; `duplicate_of` marks pairs whose image_sha256 an
    earlier key (in key order) already has; `article_mesh_terms` is filled from a `pubmed` table in
    WS/catalog.duckdb when one exists. Each file is written to a temporary name and renamed into place.
    """
    names = sorted(unit_names)
    stale = [(str(part_path(workspace, table, s.unit_name)), s.pmcid) for s in superseded for table in TABLES]
    counts = {}
    with open_workspace_database(workspace) as connection:
        mesh_filled = pubmed_fingerprint(connection) is not None
        connection.register(
            "superseded",
            pa.table(
                {"part": [p for p, _ in stale], "pmcid": [c for _, c in stale]},
                schema=pa.schema([("part", pa.string()), ("pmcid", pa.string())]),
            ),
        )
        for table in TABLES:
            parts = [str(part_path(workspace, table, name)) for name in names]
            target = workspace.catalog_dir / f"{table}.parquet"
            if not parts:
                write_parquet_atomically(rows_to_table(table, []), target)
                counts[table] = 0
                continue
            relation = connection.sql(_table_query(table, mesh_filled), params={"parts": parts})
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            relation.write_parquet(str(tmp), compression="zstd")
            tmp.replace(target)
            counts[table] = pq.ParquetFile(target).metadata.num_rows
        duplicates = _count_duplicates(workspace.catalog_dir / "figures.parquet")
    return CatalogSummary(counts["figures"], counts["articles"], counts["errors"], duplicates, mesh_filled)


def _table_query(table: str, mesh_filled: bool) -> str:
    columns = [field.name for field in table_schema(table)]
    if table != "figures":
        return _TABLE_SQL.format(current=_CURRENT_ROWS, columns=", ".join(columns), order=_ORDER[table])
    selected = ", ".join(_MESH_COLUMN if name == "article_mesh_terms" else f"current.{name}" for name in columns)
    mesh = _MESH_FROM_PUBMED if mesh_filled else _NO_MESH
    return _FIGURES_SQL.format(current=_CURRENT_ROWS, mesh=mesh, columns=selected)


def _count_duplicates(figures: Path) -> int:
    column = pq.read_table(figures, columns=["duplicate_of"]).column("duplicate_of")
    return len(column) - column.null_count

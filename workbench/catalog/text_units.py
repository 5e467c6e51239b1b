"""The text index followed unit by unit: what an extraction manifest adds or supersedes, and nothing else.

With an extraction manifest (WS/catalog/_extract_manifest.json) the text index records the units and superseded
(unit, PMCID) pairs it reflects, like the catalog cache does (`workbench.catalog.layers.FigureSource`). An update
then reads only the parts of new units (minus their superseded articles) and the keys of newly superseded articles,
so its cost follows the change: no scan of the whole catalog (a digest diff of 24M figures took ~48 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from workbench.catalog.layers import FigureSource, figure_source
from workbench.extract.catalog import part_path
from workbench.workspace import Workspace

# Rows of unit parts without their superseded articles (`superseded`: part file, pmcid), as the index reads them.
UNIT_ROWS = """
SELECT key, hash(key) AS key_hash, coalesce(caption, '') AS caption,
       coalesce(array_to_string(inline_references, chr(10)), '') AS inline_text, coalesce(article_title, '') AS title
FROM read_parquet($parts, filename = true, union_by_name = true) AS parts
ANTI JOIN superseded ON superseded.part = parts.filename AND superseded.pmcid IS NOT DISTINCT FROM parts.pmcid"""
UNIT_KEYS = "SELECT key FROM (" + UNIT_ROWS + ")"
# Keys of the articles newly superseded in units the index already holds (`gone`: part file, pmcid).
GONE_KEYS = """
SELECT parts.key FROM read_parquet($parts, filename = true, union_by_name = true) AS parts
JOIN gone ON gone.part = parts.filename AND gone.pmcid IS NOT DISTINCT FROM parts.pmcid"""


@dataclass(frozen=True)
class UnitPlan:
    """What an update reads: `parts` to add (all parts on a rebuild), the parts holding newly superseded articles."""

    source: FigureSource
    parts: tuple[str, ...]
    gone_parts: tuple[str, ...]
    gone: tuple[tuple[str, str | None], ...]  # (part, pmcid) newly superseded in units already indexed

    def recorded(self) -> dict[str, list]:
        return {"units": list(self.source.units), "superseded": [list(pair) for pair in self.source.superseded]}


def unit_source(workspace: Workspace) -> FigureSource | None:
    """The manifest's units and superseded pairs, None without a manifest (the index then diffs digests)."""
    source = figure_source(workspace, "")
    return source if source.incremental else None


def plan_update(workspace: Workspace, source: FigureSource, state: dict | None) -> UnitPlan | None:
    """The parts to read for `source` given the recorded `state` (None: a rebuild, every part); None when the
    recorded units or pairs are not all still there (only a rebuild says what is left)."""
    parts = {unit: str(part_path(workspace, "figures", unit)) for unit in source.units}
    if state is None:
        return UnitPlan(source, tuple(p for p in parts.values() if Path(p).is_file()), (), ())
    units = set(state["units"])
    superseded = {(unit, pmcid) for unit, pmcid in state["superseded"]}
    if not units <= set(source.units) or not superseded <= set(source.superseded):
        return None
    new = tuple(parts[unit] for unit in source.units if unit not in units and Path(parts[unit]).is_file())
    gone = tuple(
        (parts[unit], pmcid) for unit, pmcid in source.superseded if (unit, pmcid) not in superseded and unit in units
    )
    return UnitPlan(source, new, tuple(sorted({part for part, _ in gone})), gone)


def register_pairs(connection: duckdb.DuckDBPyConnection, workspace: Workspace, plan: UnitPlan) -> None:
    """The tables UNIT_ROWS and GONE_KEYS join: every superseded (part, pmcid) pair, and the newly gone ones."""
    pairs = [(str(part_path(workspace, "figures", unit)), pmcid) for unit, pmcid in plan.source.superseded]
    schema = pa.schema([("part", pa.string()), ("pmcid", pa.string())])
    for name, rows in (("superseded", pairs), ("gone", list(plan.gone))):
        table = pa.table({"part": [p for p, _ in rows], "pmcid": [c for _, c in rows]}, schema=schema)
        connection.register(name, table)


def gone_keys(connection: duckdb.DuckDBPyConnection, plan: UnitPlan) -> list[str]:
    if not plan.gone_parts:
        return []
    return [key for (key,) in connection.execute(GONE_KEYS, {"parts": list(plan.gone_parts)}).fetchall()]


def incoming_keys(connection: duckdb.DuckDBPyConnection, plan: UnitPlan) -> list[str]:
    """Keys the new parts bring (a re-extracted figure replaces its document: deleted first)."""
    if not plan.parts:
        return []
    return [key for (key,) in connection.execute(UNIT_KEYS, {"parts": list(plan.parts)}).fetchall()]

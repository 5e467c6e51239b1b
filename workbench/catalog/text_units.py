"""The text index followed unit by unit: what an extraction manifest adds or supersedes, and nothing else.

With an extraction manifest (WS/catalog/_extract_manifest.json) the text index records the units and superseded
(unit, PMCID) pairs it reflects, like the catalog cache does (`workbench.catalog.layers.FigureSource`). An update
then reads only the parts of new units (minus their superseded articles) and the keys of newly superseded articles,
so its cost follows the change: no scan of the whole catalog (a digest diff of 24M figures took ~48 s).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from workbench.catalog.layers import FigureSource, figure_source
from workbench.catalog.tantivy_store import (
    FORMAT_VERSION,
    UpdateReport,
    add_figures,
    delete_keys,
    index_exists,
    index_root,
    open_text_index,
    record_batches,
    swap_in,
)
from workbench.extract.catalog import part_path
from workbench.fileio import read_json, write_json_atomically
from workbench.locks import exclusive_lock
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


def units_fingerprint(source: FigureSource) -> str:
    """What the index state records for `source` (with the format and DuckDB's version: it stores `hash(key)`)."""
    return f"v{FORMAT_VERSION}:duckdb-{duckdb.__version__}:{source.fingerprint}"


def update_by_units(
    workspace: Workspace,
    source: FigureSource,
    full: bool,
    progress: bool,
    memory_limit: str,
    wait_s: float | None,
    heap_bytes: int,
) -> UpdateReport:
    """`update_text_index` for a workspace with an extraction manifest: only new units' parts are read."""
    started = time.perf_counter()
    root = index_root(workspace)
    fingerprint = units_fingerprint(source)
    with exclusive_lock(workspace.locks / "text-index.lock", f"another process is updating the text index {root}",
                        wait_s=wait_s):  # fmt: skip
        state = read_json(root / "state.json", default=dict)
        if not full and state.get("source") == fingerprint and index_exists(root / "tantivy"):
            return UpdateReport(0, 0, False, int(state.get("documents", 0)), time.perf_counter() - started)
        usable = state.get("format") == FORMAT_VERSION and index_exists(root / "tantivy") and state.get("units")
        plan = None if full or not usable else plan_update(workspace, source, state["units"])
        rebuild = plan is None
        plan = plan or plan_update(workspace, source, None)
        live, root = root, (root.with_name(root.name + ".build") if rebuild else root)
        if rebuild:
            shutil.rmtree(root, ignore_errors=True)  # an interrupted rebuild (we hold the lock)
        root.mkdir(parents=True, exist_ok=True)
        config = {"memory_limit": memory_limit, "preserve_insertion_order": False}
        with duckdb.connect(":memory:", config=config) as connection:
            connection.execute("SET enable_progress_bar_print = false")
            register_pairs(connection, workspace, plan)
            gone = [] if rebuild else gone_keys(connection, plan)
            incoming = [] if rebuild else incoming_keys(connection, plan)
            index = open_text_index(root / "tantivy", create=rebuild)
            writer = index.writer(heap_size=heap_bytes, num_threads=2 if rebuild else 1)
            delete_keys(writer, [*gone, *incoming])  # a re-extracted figure replaces its document
            added = len(incoming)
            if plan.parts:
                params = {"parts": list(plan.parts)}
                if rebuild:
                    added = connection.execute(f"SELECT count(*) FROM ({UNIT_ROWS})", params).fetchone()[0]
                add_figures(writer, record_batches(connection.execute(UNIT_ROWS, params)), added, progress)
            writer.commit()
            writer.wait_merging_threads()
        index.reload()
        documents = int(index.searcher().num_docs)
        seconds = time.perf_counter() - started
        timing = {"built_seconds": round(seconds, 1)} if rebuild else {"built_seconds": state.get("built_seconds")}
        write_json_atomically(
            {"format": FORMAT_VERSION, "source": fingerprint, "documents": documents, "units": plan.recorded(),
             **timing},
            root / "state.json",
        )  # fmt: skip
        if rebuild:
            swap_in(root, live)
    return UpdateReport(int(added), len(gone), rebuild, documents, seconds)

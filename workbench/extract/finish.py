"""The finish step of a run: `sizes.json`, the consolidated catalog, stale flags, then the extract manifest.

The manifest (`WS/catalog/_extract_manifest.json`) records the state the catalog reflects and is written
last: when it is missing, damaged or different, the next run does the whole step again. Stale flags are
cleared before it is written, so a failure there (a busy database) is retried by the next run instead of
leaving articles stale forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench.extract.catalog import TABLES, CatalogSummary, consolidate
from workbench.extract.discovery import Candidate, _catalog_state
from workbench.extract.planning import WorkUnit, latest_entries, superseded_rows
from workbench.fileio import CorruptFile, fsync_file, fsync_folder, read_json, write_json_atomically
from workbench.workspace import Workspace

SIZES_FILE = "sizes.json"
MANIFEST_FILE = "_extract_manifest.json"


def write_sizes(workspace: Workspace, stats: Mapping[str, Mapping[str, Any]]) -> None:
    """`WS/shards/sizes.json`: pairs per shard, as webdataset's `wids` and img2dataset readers expect."""
    sizes = {f"{name}.tar": s["pairs"] for name, s in sorted(stats.items())}
    write_json_atomically(sizes, workspace.shards / SIZES_FILE)


def catalog_is_current(workspace: Workspace, state: Mapping[str, Any]) -> bool:
    """Whether the consolidated catalog reflects `state`; a damaged manifest counts as absent."""
    files_exist = all((workspace.catalog_dir / f"{t}.parquet").exists() for t in TABLES)
    try:
        manifest = read_json(workspace.catalog_dir / MANIFEST_FILE, default=lambda: None)
    except CorruptFile:
        return False
    return files_exist and manifest == state


def clear_stale_flags(
    workspace: Workspace, units: Sequence[WorkUnit], complete: set[str], candidates: Sequence[Candidate]
) -> None:
    """Tell acquisition that stale articles now have their current package extracted."""
    latest = latest_entries(units)
    done = [
        c.package.pmcid
        for c in candidates
        if (c.file_list_row or {}).get("stale")
        and c.package.pmcid in latest
        and latest[c.package.pmcid][0].name in complete
        and latest[c.package.pmcid][1] == c.package
    ]
    if done:
        from workbench.acquire.state import clear_stale

        clear_stale(workspace, done)


def _make_catalog_durable(workspace: Workspace) -> None:
    for table in TABLES:
        fsync_file(workspace.catalog_dir / f"{table}.parquet")
    fsync_folder(workspace.catalog_dir)


def finish(
    workspace: Workspace,
    plan: Sequence[WorkUnit],
    stats: Mapping[str, Mapping[str, Any]],
    candidates: Sequence[Candidate],
    ran_units: bool,
) -> CatalogSummary | None:
    """Write sizes.json and consolidate the catalog unless it already reflects exactly these units."""
    complete = set(stats)
    superseded = superseded_rows(plan, complete)
    state = _catalog_state(workspace, complete, superseded)
    if not ran_units and catalog_is_current(workspace, state):
        return None
    manifest = workspace.catalog_dir / MANIFEST_FILE
    if manifest.exists():  # from here until the new one is written, the catalog is not known to be current
        manifest.unlink()
        fsync_folder(manifest.parent)
    write_sizes(workspace, stats)
    summary = consolidate(workspace, complete, superseded)
    _make_catalog_durable(workspace)
    if any((c.file_list_row or {}).get("stale") for c in candidates):
        clear_stale_flags(workspace, plan, complete, candidates)
    write_json_atomically(state, manifest)
    return summary

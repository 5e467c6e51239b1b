"""Extraction pipeline: discover packages, plan them into work units, run the units (in-process or on Dask),
then finish (sizes.json, consolidated catalog, stale flags, manifest).

Each step lives in its own module: `discovery` (what to extract, job state), `planning` (`_plan.parquet`),
`units` (one unit -> shard + parts + `_stats.json` marker), `execution` (in-process / Dask) and `finish`.
A run is safe to kill at any moment and re-run: finished units are kept, the others are redone, and a
damaged marker is named in a warning and its unit redone. One `workbench extract` runs per workspace at a
time (`workbench.locks`; a second one fails with `ResourceBusy`, exit 75).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import UserError
from workbench.extract.catalog import CatalogSummary
from workbench.extract.discovery import Candidate, PackageRef, discover
from workbench.extract.execution import execute
from workbench.extract.finish import MANIFEST_FILE, SIZES_FILE, finish
from workbench.extract.planning import PLAN_FILE, WorkUnit, load_plan, packages_per_unit, plan_new_units, save_plan
from workbench.extract.records import ExtractError
from workbench.extract.units import (
    STATS_SUFFIX,
    Extractor,
    UnitJob,
    completed_stats,
    default_extractor,
    discard_unfinished,
    raise_package_failure,
    record_package_failure,
    run_unit,
)
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

__all__ = [
    "MANIFEST_FILE",
    "PLAN_FILE",
    "SIZES_FILE",
    "STATS_SUFFIX",
    "ExtractionConfig",
    "ExtractionReport",
    "Extractor",
    "PackageRef",
    "WorkUnit",
    "default_extractor",
    "load_plan",
    "raise_package_failure",
    "record_package_failure",
    "run_extraction",
    "run_unit",
]


@dataclass(frozen=True)
class ExtractionConfig:
    """What `workbench extract` does. `workers=0` runs units in this process (no Dask), `None` one per core."""

    workspace: Path
    packages: tuple[Path, ...] = ()  # empty: everything acquired into WS/mirror
    shard_size: int = 10_000  # target pairs per shard
    workers: int | None = None
    scheduler: str | None = None  # address of a running Dask scheduler
    limit: int | None = None  # at most this many new packages this run
    extractor: Extractor = default_extractor
    on_package_error: Callable[[PackageRef, Exception], list[ExtractError]] = record_package_failure
    progress: bool = True

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise UserError(f"shard size must be at least 1, got {self.shard_size}")
        if self.workers is not None and self.workers < 0:
            raise UserError(f"workers must be 0 (in-process) or more, got {self.workers}")
        if self.limit is not None and self.limit < 0:
            raise UserError(f"limit must be 0 or more, got {self.limit}")


@dataclass(frozen=True)
class ExtractionReport:
    new_packages: int
    new_units: int
    units_run: int
    failed_units: dict[str, str] = field(default_factory=dict)
    pairs_written: int = 0
    packages_done: int = 0
    missing_packages: int = 0
    seconds: float = 0.0
    catalog: CatalogSummary | None = None
    warnings: tuple[str, ...] = ()  # e.g. a damaged resume marker whose unit was redone

    @property
    def nothing_to_do(self) -> bool:
        return self.units_run == 0 and self.catalog is None and not self.failed_units

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_written / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        lines = [f"warning: {warning}" for warning in self.warnings]
        if self.nothing_to_do:
            return "\n".join([*lines, "nothing to do: every package is extracted and the catalog is up to date"])
        lines.append(
            f"planned {self.new_packages} new packages into {self.new_units} work units; ran {self.units_run} "
            f"units: {self.packages_done} packages, {self.pairs_written} pairs in {self.seconds:.1f} s "
            f"({self.pairs_per_second:.0f} pairs/s)"
        )
        if self.missing_packages:
            lines.append(f"{self.missing_packages} packages marked downloaded are missing from the mirror (skipped)")
        if self.catalog:
            c = self.catalog
            lines.append(
                f"catalog: {c.figures} figures ({c.duplicates} exact duplicates), {c.articles} articles, "
                f"{c.errors} errors" + (", MeSH filled from `pubmed`" if c.mesh_filled else "")
            )
        for name, error in sorted(self.failed_units.items()):
            lines.append(f"work unit {name} failed: {error}")
        if self.failed_units:
            lines.append("re-run the same command to retry the failed units")
        return "\n".join(lines)


def workspace_lock(workspace: Workspace) -> AbstractContextManager[None]:
    """Only one `workbench extract` per workspace at a time (the lock dies with its process, even on kill -9)."""
    return exclusive_lock(
        workspace.locks / "extract.lock", f"another `workbench extract` is running on {workspace.root}"
    )


def _clear_scratch(workspace: Workspace) -> None:
    scratch = workspace.tmp / "extract"
    if scratch.is_dir():
        shutil.rmtree(scratch)


def _jobs(
    workspace: Workspace,
    config: ExtractionConfig,
    plan: Sequence[WorkUnit],
    done: set[str],
    candidates: Sequence[Candidate],
) -> list[UnitJob]:
    """One job per planned unit without stats; leftovers of an interrupted attempt are discarded first."""
    rows = {c.package: c.file_list_row for c in candidates}
    jobs = []
    for unit in plan:
        if unit.name in done:
            continue
        discard_unfinished(workspace, unit)
        unit_rows = tuple(rows.get(package) for package in unit.packages)
        jobs.append(UnitJob(workspace.root, unit, unit_rows, config.extractor, config.on_package_error))
    return jobs


def run_extraction(config: ExtractionConfig) -> ExtractionReport:
    """Plan, run and consolidate; safe to kill at any moment and re-run (see the module docstring)."""
    workspace = Workspace.at(config.workspace).ensure()
    started = time.time()
    with workspace_lock(workspace):
        _clear_scratch(workspace)
        plan = load_plan(workspace)
        stats, warnings = completed_stats(workspace, plan)
        candidates, missing = discover(workspace, config.packages)
        new_units = plan_new_units(plan, candidates, packages_per_unit(config.shard_size, stats), config.limit)
        if new_units:
            plan = [*plan, *new_units]
            save_plan(workspace, plan)  # before any unit runs: a killed run resumes with the same units
        jobs = _jobs(workspace, config, plan, set(stats), candidates)
        failed, pairs, packages = {}, 0, 0
        for job, unit_stats, error in execute(jobs, config.workers, config.scheduler, config.progress):
            if error is not None:
                failed[job.unit.name] = f"{type(error).__name__}: {error}"
                continue
            stats[job.unit.name] = unit_stats
            pairs += unit_stats["pairs"]
            packages += unit_stats["count"]
        summary = finish(workspace, plan, stats, candidates, ran_units=bool(jobs))
        _clear_scratch(workspace)
    return ExtractionReport(
        new_packages=sum(len(u.packages) for u in new_units),
        new_units=len(new_units),
        units_run=len(jobs) - len(failed),
        failed_units=failed,
        pairs_written=pairs,
        packages_done=packages,
        missing_packages=missing,
        seconds=time.time() - started,
        catalog=summary,
        warnings=tuple(warnings),
    )

"""Planning: cut packages into work units, recorded in `WS/shards/_plan.parquet` before any unit runs.

A killed run resumes with exactly the same units. Packages that appear later (or new versions of extracted
articles) form new units numbered after the existing ones; planned units never change.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from workbench.errors import UserError
from workbench.extract.catalog import Superseded
from workbench.extract.discovery import Candidate, PackageRef
from workbench.fileio import write_parquet_atomically
from workbench.workspace import Workspace

PLAN_FILE = "_plan.parquet"
DEFAULT_PAIRS_PER_PACKAGE = 4.0  # BIOMEDICA: ~24M pairs from ~6M articles; replaced by the observed rate
_PLAN_SCHEMA = pa.schema(
    [("unit", pa.int32()), ("source", pa.string()), ("pmcid", pa.string()), ("version", pa.string())]
)


@dataclass(frozen=True)
class WorkUnit:
    index: int
    packages: tuple[PackageRef, ...]

    @property
    def name(self) -> str:
        return f"{self.index:06d}"


def stable_rank(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def plan_path(workspace: Workspace) -> Path:
    return workspace.shards / PLAN_FILE


def load_plan(workspace: Workspace) -> list[WorkUnit]:
    """The recorded units; a damaged plan is a `UserError` naming it (it alone says which packages a shard holds)."""
    path = plan_path(workspace)
    if not path.exists():
        return []
    try:
        table = pq.read_table(path, schema=_PLAN_SCHEMA).to_pylist()
    except (pa.ArrowException, OSError) as error:
        raise UserError(
            f"{path} is damaged ({type(error).__name__}: {error}); it records which packages each shard holds: "
            f"restore it, or move {workspace.shards} and {workspace.catalog_dir} aside to extract from scratch"
        ) from error
    units: dict[int, list[PackageRef]] = {}
    for row in table:
        units.setdefault(row["unit"], []).append(PackageRef(row["source"], row["pmcid"], row["version"]))
    return [WorkUnit(index, tuple(packages)) for index, packages in sorted(units.items())]


def save_plan(workspace: Workspace, units: Sequence[WorkUnit]) -> None:
    rows = [
        {"unit": u.index, "source": p.source, "pmcid": p.pmcid, "version": p.version} for u in units for p in u.packages
    ]
    write_parquet_atomically(pa.Table.from_pylist(rows, schema=_PLAN_SCHEMA), plan_path(workspace))


def latest_entries(units: Sequence[WorkUnit]) -> dict[str, tuple[WorkUnit, PackageRef]]:
    """pmcid -> (unit, package) of its most recent planning."""
    latest = {}
    for unit in units:
        for package in unit.packages:
            latest[package.pmcid] = (unit, package)
    return latest


def plan_new_units(
    plan: Sequence[WorkUnit], candidates: Sequence[Candidate], packages_per_unit: int, limit: int | None
) -> list[WorkUnit]:
    """New work units for candidates not yet planned (or planned from another file/version).

    New packages are ordered by a stable hash of the PMCID, so units mix journals and years, and cut into
    units of `packages_per_unit`; unit numbers continue after the existing plan.
    """
    latest = latest_entries(plan)
    fresh = [c.package for c in candidates if latest.get(c.package.pmcid, (None, None))[1] != c.package]
    fresh.sort(key=lambda p: (stable_rank(p.pmcid), p.source))
    if limit is not None:
        fresh = fresh[:limit]
    start = plan[-1].index + 1 if plan else 0
    return [
        WorkUnit(start + i, tuple(fresh[j : j + packages_per_unit]))
        for i, j in enumerate(range(0, len(fresh), packages_per_unit))
    ]


def packages_per_unit(shard_size: int, stats: Mapping[str, Mapping[str, Any]]) -> int:
    """How many packages make a shard of about `shard_size` pairs, from the pair rate observed so far."""
    packages = sum(s["count"] for s in stats.values())
    pairs = sum(s["pairs"] for s in stats.values())
    rate = pairs / packages if packages and pairs else DEFAULT_PAIRS_PER_PACKAGE
    return max(1, math.ceil(shard_size / rate))


def superseded_rows(units: Sequence[WorkUnit], complete: set[str]) -> list[Superseded]:
    """(unit, pmcid) whose rows a later complete unit replaced; an incomplete newer unit replaces nothing yet."""
    seen: dict[str, str] = {}
    replaced = []
    for unit in units:
        if unit.name not in complete:
            continue
        for package in unit.packages:
            if package.pmcid in seen:
                replaced.append(Superseded(seen[package.pmcid], package.pmcid))
            seen[package.pmcid] = unit.name
    return replaced

"""Extraction pipeline: plan packages into work units, run each unit (in-process or on Dask), consolidate.

A work unit is a fixed set of packages that becomes one shard `WS/shards/NNNNNN.tar`, its catalog parts
`WS/catalog/parts/<table>/NNNNNN.parquet` and, written last, `WS/shards/NNNNNN_stats.json` (the resume
marker). Units are recorded in `WS/shards/_plan.parquet` before any of them runs, so a killed run resumes
with exactly the same units; a unit without its stats file is redone from scratch. Packages that appear
later (or new versions of extracted articles) form new units; finished units are never touched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from workbench.acquire.state import done_downloads, file_list_rows
from workbench.enrich.store import pubmed_fingerprint
from workbench.extract.catalog import (
    TABLES,
    CatalogSummary,
    Superseded,
    consolidate,
    part_path,
    write_parts,
)
from workbench.extract.records import ArticleResult, ExtractError
from workbench.extract.shards import SampleSpool
from workbench.fileio import file_sha256, write_json_atomically, write_parquet_atomically
from workbench.ustar import ShardWriter
from workbench.workspace import Workspace

PLAN_FILE = "_plan.parquet"
STATS_SUFFIX = "_stats.json"
SIZES_FILE = "sizes.json"
MANIFEST_FILE = "_extract_manifest.json"
DEFAULT_PAIRS_PER_PACKAGE = 4.0  # BIOMEDICA: ~24M pairs from ~6M articles; replaced by the observed rate
PACKAGE_SUFFIXES = (".tar.gz", ".tgz")
LOCAL_MALLOC_TRIM_BYTES = 64 * 2**20
MIN_UNITS_IN_FLIGHT = 256  # units submitted to Dask ahead of completion (more with many workers)
_PMCID = re.compile(r"PMC\d+")
_PLAN_SCHEMA = pa.schema(
    [("unit", pa.int32()), ("source", pa.string()), ("pmcid", pa.string()), ("version", pa.string())]
)

#: Called as `extractor(package_path, file_list_row=row_or_None)`, e.g. `default_extractor` or
#: `functools.partial(extract_package, config=ExtractConfig(min_side=64))`; must be picklable for Dask.
Extractor = Callable[..., ArticleResult]


@dataclass(frozen=True)
class PackageRef:
    """One package to extract: `source` is relative to the workspace when inside it, else absolute."""

    source: str
    pmcid: str
    version: str | None = None  # sha256 or Last Updated from `downloads`; a change means re-extract


@dataclass(frozen=True)
class WorkUnit:
    index: int
    packages: tuple[PackageRef, ...]

    @property
    def name(self) -> str:
        return f"{self.index:06d}"


def record_package_failure(package: PackageRef, error: Exception) -> list[ExtractError]:
    """Default policy when the extractor raises: record it as an error row and go on with the next package."""
    detail = f"{type(error).__name__}: {error}"[:2000]
    return [ExtractError(package.source, "package", "extractor_failed", detail, package.pmcid)]


def raise_package_failure(package: PackageRef, error: Exception) -> list[ExtractError]:
    """Debugging policy: let the extractor's exception fail the work unit."""
    raise error


def default_extractor(source: Path, file_list_row: dict[str, Any] | None) -> ArticleResult:
    """`workbench.extract.article.extract_package` with its default configuration."""
    from workbench.extract.article import extract_package

    return extract_package(source, file_list_row=file_list_row)


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
            raise ValueError(f"shard size must be at least 1, got {self.shard_size}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be 0 (in-process) or more, got {self.workers}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be 0 or more, got {self.limit}")


@dataclass(frozen=True)
class UnitJob:
    """Everything a worker needs to run one unit (picklable)."""

    root: Path
    unit: WorkUnit
    file_list_rows: tuple[dict[str, Any] | None, ...]
    extractor: Extractor
    on_package_error: Callable[[PackageRef, Exception], list[ExtractError]]


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

    @property
    def nothing_to_do(self) -> bool:
        return self.units_run == 0 and self.catalog is None and not self.failed_units

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_written / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        if self.nothing_to_do:
            return "nothing to do: every package is extracted and the catalog is up to date"
        lines = [
            f"planned {self.new_packages} new packages into {self.new_units} work units; ran {self.units_run} "
            f"units: {self.packages_done} packages, {self.pairs_written} pairs in {self.seconds:.1f} s "
            f"({self.pairs_per_second:.0f} pairs/s)"
        ]
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


# ---------------------------------------------------------------------------------------------------- discovery


def stable_rank(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def pmcid_of(path: Path) -> str:
    """PMCID in a package's name (`PMC123.tar.gz`, folder `PMC123`), else the name without its suffix."""
    found = _PMCID.search(path.name)
    if found:
        return found.group(0)
    name = path.name
    for suffix in PACKAGE_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def source_name(workspace: Workspace, path: Path) -> str:
    path = path.expanduser().resolve()
    return str(path.relative_to(workspace.root)) if path.is_relative_to(workspace.root) else str(path)


def source_path(workspace: Workspace, source: str) -> Path:
    return workspace.root / source  # an absolute `source` stays absolute


def _is_package_file(path: Path) -> bool:
    return path.name.endswith(PACKAGE_SUFFIXES)


def _packages_under(path: Path) -> list[Path]:
    """Package files and extracted package folders (holding an .nxml) given on the command line."""
    if not path.exists():
        raise FileNotFoundError(f"package path not found: {path}")
    if path.is_file():
        if not _is_package_file(path):
            raise ValueError(f"{path} is not a PMC package (.tar.gz/.tgz) or an extracted package folder")
        return [path]
    if any(path.glob("*.nxml")):
        return [path]
    found = {p for p in path.rglob("*") if p.is_file() and _is_package_file(p)}
    found |= {p.parent for p in path.rglob("*.nxml")}
    return sorted(found)


@dataclass(frozen=True)
class Candidate:
    package: PackageRef
    file_list_row: dict[str, Any] | None


#: file-list columns handed to the extractor (licence, citation, ids); any others are not read
FILE_LIST_FIELDS = ("pmcid", "file", "citation", "pmid", "license", "license_group", "last_updated", "stale")


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat(sep=" ") if hasattr(v, "isoformat") and not isinstance(v, str) else v) for k, v in row.items()
    }


def _state_rows(frame: pl.DataFrame | None, extra: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """The FILE_LIST_FIELDS (plus `extra`) of acquisition's rows as JSON-friendly dicts; None without state."""
    if frame is None:
        return None
    columns = [name for name in (*FILE_LIST_FIELDS, *extra) if name in frame.columns]
    return [_jsonable(row) for row in frame.select(columns).to_dicts()]


def _file_list_index(workspace: Workspace, pmcids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """pmcid -> file-list row for `pmcids`, from the `file_list` table or else WS/mirror/oa_file_list.csv."""
    rows = _state_rows(file_list_rows(workspace, pmcids))
    if rows is None and (workspace.mirror / "oa_file_list.csv").is_file():
        from workbench.acquire.filelist import read_file_list, skip_bad_row

        listed = read_file_list(workspace.mirror, on_bad_row=skip_bad_row)
        rows = [_jsonable(r) for r in listed.filter(listed["pmcid"].is_in(list(pmcids))).to_dicts()]
    return {row["pmcid"]: {k: row.get(k) for k in FILE_LIST_FIELDS if k in row} for row in rows or []}


def discover(workspace: Workspace, paths: Sequence[Path]) -> tuple[list[Candidate], int]:
    """Packages to consider and how many `downloads` rows point at a missing file.

    Without `paths`: the `downloads` rows with status done (their file under WS/mirror), or, when there is
    no such table, every package under WS/mirror. One package per PMCID (the newest file wins).
    """
    downloads = None if paths else _state_rows(done_downloads(workspace), extra=("sha256",))
    if downloads is not None:
        candidates, missing = [], 0
        for row in downloads:
            path = workspace.mirror / row["file"]
            if not path.exists():
                missing += 1
                continue
            version = row.pop("sha256", None) or (str(row["last_updated"]) if row.get("last_updated") else None)
            candidates.append(Candidate(PackageRef(source_name(workspace, path), row["pmcid"], version), row))
        return candidates, missing
    files = [p for given in paths for p in _packages_under(Path(given))] if paths else _packages_under_mirror(workspace)
    newest: dict[str, Path] = {}
    for path in sorted(set(files)):
        pmcid = pmcid_of(path)
        if pmcid not in newest or path.stat().st_mtime > newest[pmcid].stat().st_mtime:
            newest[pmcid] = path
    index = _file_list_index(workspace, sorted(newest))
    candidates = [
        Candidate(PackageRef(source_name(workspace, p), pmcid), index.get(pmcid)) for pmcid, p in sorted(newest.items())
    ]
    return candidates, 0


def _packages_under_mirror(workspace: Workspace) -> list[Path]:
    if not workspace.mirror.is_dir():
        return []
    return sorted(p for p in workspace.mirror.rglob("*") if p.is_file() and _is_package_file(p))


# ---------------------------------------------------------------------------------------------------- planning


def load_plan(workspace: Workspace) -> list[WorkUnit]:
    path = workspace.shards / PLAN_FILE
    if not path.exists():
        return []
    table = pq.read_table(path, schema=_PLAN_SCHEMA).to_pylist()
    units: dict[int, list[PackageRef]] = {}
    for row in table:
        units.setdefault(row["unit"], []).append(PackageRef(row["source"], row["pmcid"], row["version"]))
    return [WorkUnit(index, tuple(packages)) for index, packages in sorted(units.items())]


def save_plan(workspace: Workspace, units: Sequence[WorkUnit]) -> None:
    rows = [
        {"unit": u.index, "source": p.source, "pmcid": p.pmcid, "version": p.version} for u in units for p in u.packages
    ]
    write_parquet_atomically(pa.Table.from_pylist(rows, schema=_PLAN_SCHEMA), workspace.shards / PLAN_FILE)


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


def stats_path(workspace: Workspace, unit: WorkUnit) -> Path:
    return workspace.shards / f"{unit.name}{STATS_SUFFIX}"


def shard_path(workspace: Workspace, unit: WorkUnit) -> Path:
    return workspace.shards / f"{unit.name}.tar"


def completed_stats(workspace: Workspace, units: Sequence[WorkUnit]) -> dict[str, dict[str, Any]]:
    """Stats of the units whose resume marker exists, by unit name."""
    done = {}
    for unit in units:
        path = stats_path(workspace, unit)
        if path.exists():
            done[unit.name] = json.loads(path.read_text())
    return done


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


# ---------------------------------------------------------------------------------------------------- one unit


def _encode_json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")


def _error_row(error: ExtractError, package: PackageRef, pmcid: str | None) -> dict[str, Any]:
    return {
        "pmcid": error.pmcid or pmcid or package.pmcid,
        "package": package.source,
        "stage": error.stage,
        "reason": error.reason,
        "detail": error.detail,
    }


def _extract(job: UnitJob, package: PackageRef, row: dict[str, Any] | None) -> ArticleResult:
    try:
        return job.extractor(source_path(Workspace(job.root), package.source), file_list_row=row)
    except Exception as error:  # the policy decides: record (default) or re-raise
        return ArticleResult(package.source, package.pmcid, None, [], job.on_package_error(package, error))


@dataclass
class _Collected:
    """What a unit's packages yielded: catalog rows by key (pairs are in the spool), articles, errors."""

    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    articles: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _collect(job: UnitJob, spool: SampleSpool) -> _Collected:
    collected = _Collected()
    for package, file_list_row in zip(job.unit.packages, job.file_list_rows, strict=True):
        result = _extract(job, package, file_list_row)
        written = 0
        for pair in result.pairs:
            if pair.key in spool:
                duplicate = ExtractError(package.source, "shard", "duplicate_key", pair.key)
                collected.errors.append(_error_row(duplicate, package, result.pmcid))
                continue
            members = {"jpg": pair.jpg, "txt": pair.caption.encode("utf-8"), "json": _encode_json(pair.sample_json)}
            spool.add(pair.key, members)
            collected.figures[pair.key] = dict(pair.row, key=pair.key)
            written += 1
        collected.errors.extend(_error_row(e, package, result.pmcid) for e in result.errors)
        if result.article is not None:
            collected.articles.append(dict(result.article, package=package.source, pair_count=written))
    return collected


def _write_shard(spool: SampleSpool, figures: dict[str, dict[str, Any]], path: Path, shard: str) -> list[dict]:
    """Write the spooled samples to `path` in shuffled order; returns their catalog rows with shard and offsets."""
    ordered = []
    with ShardWriter(path) as writer:
        for key, locations in spool.write_shuffled(writer):
            row = figures[key]
            row["shard"] = shard
            for ext, location in locations.items():
                row[f"{ext}_offset"], row[f"{ext}_size"] = location.offset, location.size
            ordered.append(row)
    return ordered


def _unit_stats(unit: WorkUnit, collected: _Collected, pairs: int, shard_bytes: int, started: float) -> dict:
    """img2dataset-style `_stats.json` content."""
    ended = time.time()
    return {
        "unit": unit.index,
        "shard": f"{unit.name}.tar",
        "count": len(unit.packages),
        "successes": sum(1 for a in collected.articles if a["pair_count"]),
        "articles": len(collected.articles),
        "failed_to_parse": len(unit.packages) - len(collected.articles),
        "pairs": pairs,
        "errors": len(collected.errors),
        "status_dict": dict(sorted(Counter(e["reason"] for e in collected.errors).items())),
        "bytes": shard_bytes,
        "start_time": started,
        "end_time": ended,
        "duration": ended - started,
    }


def run_unit(job: UnitJob) -> dict[str, Any]:
    """Extract a unit's packages into one shard + catalog parts, then write its stats (the resume marker).

    Everything is built in a private scratch folder under WS/tmp and renamed into place at the end (parts,
    then the shard, then the stats file), so a unit killed half-way leaves nothing that looks finished.
    """
    workspace, unit = Workspace(job.root), job.unit
    scratch = workspace.tmp / "extract" / f"{unit.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    started = time.time()
    try:
        spool = SampleSpool(scratch / "spool.bin")
        try:
            collected = _collect(job, spool)
            ordered = _write_shard(spool, collected.figures, scratch / f"{unit.name}.tar", f"shards/{unit.name}.tar")
        finally:
            spool.close()
        parts = write_parts(scratch, {"figures": ordered, "articles": collected.articles, "errors": collected.errors})
        for table in TABLES:
            target = part_path(workspace, table, unit.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            parts[table].replace(target)
        shard_sha256 = file_sha256(scratch / f"{unit.name}.tar")  # still in the page cache; saves subsets a re-read
        (scratch / f"{unit.name}.tar").replace(shard_path(workspace, unit))
        stats = _unit_stats(unit, collected, len(ordered), shard_path(workspace, unit).stat().st_size, started)
        stats["sha256"] = shard_sha256
        write_json_atomically(stats, stats_path(workspace, unit))
        return stats
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def discard_unfinished(workspace: Workspace, unit: WorkUnit) -> None:
    """Remove what an interrupted attempt at `unit` may have renamed into place before its stats file."""
    shard_path(workspace, unit).unlink(missing_ok=True)
    for table in TABLES:
        part_path(workspace, table, unit.name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- execution


def execute(
    jobs: Sequence[UnitJob], workers: int | None, scheduler: str | None, progress: bool = True
) -> Iterator[tuple[UnitJob, dict[str, Any] | None, BaseException | None]]:
    """Run `run_unit` for every job and yield (job, stats, error) as units finish.

    In-process when `workers == 0` and no scheduler is given; otherwise on Dask: the scheduler at
    `scheduler`, or a LocalCluster of `workers` single-threaded processes (one per core by default).
    """
    if not jobs:
        return
    bar = tqdm(total=len(jobs), unit="shard", desc="extract", disable=not progress)
    try:
        if scheduler is None and workers == 0:
            for job in jobs:
                try:
                    stats, error = run_unit(job), None
                except Exception as failure:
                    stats, error = None, failure
                bar.update()
                yield job, stats, error
            return
        yield from _execute_on_dask(jobs, workers, scheduler, bar)
    finally:
        bar.close()


def _execute_on_dask(
    jobs: Sequence[UnitJob], workers: int | None, scheduler: str | None, bar: tqdm
) -> Iterator[tuple[UnitJob, dict[str, Any] | None, BaseException | None]]:
    from distributed import Client, LocalCluster, as_completed

    with _dask_client(Client, LocalCluster, workers, scheduler) as client:
        # Keep a bounded number of units submitted, so the scheduler never holds every unit's package list.
        window = max(4 * sum(client.nthreads().values()), MIN_UNITS_IN_FLIGHT)
        waiting, running, finished = iter(jobs), {}, as_completed()

        def submit_next() -> None:
            job = next(waiting, None)
            if job is not None:
                key = f"extract-unit-{job.unit.name}-{uuid.uuid4().hex[:8]}"
                future = client.submit(run_unit, job, key=key, pure=False, retries=0)
                running[future] = job
                finished.add(future)

        for _ in range(window):
            submit_next()
        for future in finished:
            job = running.pop(future)
            try:
                stats, error = future.result(), None
            except Exception as failure:
                stats, error = None, failure
            future.release()
            submit_next()
            bar.update()
            yield job, stats, error


@contextmanager
def _dask_client(client_class: type, cluster_class: type, workers: int | None, scheduler: str | None) -> Iterator[Any]:
    if scheduler is not None:
        try:
            client = client_class(scheduler, timeout="20s")
        except (OSError, TimeoutError) as error:
            raise ValueError(f"cannot connect to the Dask scheduler at {scheduler!r}: {error}") from error
        with client:
            yield client
        return
    import dask

    count = workers or os.cpu_count() or 1
    # Dask makes glibc return freed memory to the OS at 64 KiB; decoding images then page-faults all the time.
    # Keep up to LOCAL_MALLOC_TRIM_BYTES per worker instead (measured: 5x fewer page faults, half the system time).
    keep_freed = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": LOCAL_MALLOC_TRIM_BYTES}
    with (
        dask.config.set(keep_freed),
        cluster_class(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        client_class(cluster) as client,
    ):
        yield client


@contextmanager
def workspace_lock(workspace: Workspace) -> Iterator[None]:
    """Only one `workbench extract` per workspace at a time (the lock dies with its process, even on kill -9)."""
    lock_path = workspace.tmp / "extract.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise ValueError(f"another `workbench extract` is running on {workspace.root}") from error
        yield


def _clear_scratch(workspace: Workspace) -> None:
    scratch = workspace.tmp / "extract"
    if scratch.is_dir():
        shutil.rmtree(scratch)


def _write_sizes(workspace: Workspace, stats: Mapping[str, Mapping[str, Any]]) -> None:
    sizes = {f"{name}.tar": s["pairs"] for name, s in sorted(stats.items())}
    write_json_atomically(sizes, workspace.shards / SIZES_FILE)


def _catalog_state(workspace: Workspace, complete: set[str], superseded: Sequence[Superseded]) -> dict[str, Any]:
    return {
        "units": sorted(complete),
        "superseded": sorted([s.unit_name, s.pmcid] for s in superseded),
        "pubmed": pubmed_fingerprint(workspace),
    }


def _catalog_is_current(workspace: Workspace, state: Mapping[str, Any]) -> bool:
    manifest = workspace.catalog_dir / MANIFEST_FILE
    files_exist = all((workspace.catalog_dir / f"{t}.parquet").exists() for t in TABLES)
    return files_exist and manifest.exists() and json.loads(manifest.read_text()) == state


def _clear_stale_flags(
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


def _finish(
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
    if not ran_units and _catalog_is_current(workspace, state):
        return None
    _write_sizes(workspace, stats)
    summary = consolidate(workspace, complete, superseded)
    write_json_atomically(state, workspace.catalog_dir / MANIFEST_FILE)
    if any((c.file_list_row or {}).get("stale") for c in candidates):
        _clear_stale_flags(workspace, plan, complete, candidates)
    return summary


def run_extraction(config: ExtractionConfig) -> ExtractionReport:
    """Plan, run and consolidate; safe to kill at any moment and re-run (see the module docstring)."""
    workspace = Workspace.at(config.workspace).ensure()
    started = time.time()
    with workspace_lock(workspace):
        _clear_scratch(workspace)
        plan = load_plan(workspace)
        stats = completed_stats(workspace, plan)
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
        summary = _finish(workspace, plan, stats, candidates, ran_units=bool(jobs))
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
    )

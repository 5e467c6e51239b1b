"""One work unit: its packages become one shard `WS/shards/NNNNNN.tar`, its catalog parts
`WS/catalog/parts/<table>/NNNNNN.parquet` and, written last, `WS/shards/NNNNNN_stats.json` (the resume marker).

A unit without a readable marker is redone from scratch: whatever an interrupted attempt left (shard, parts,
a damaged marker) is removed first. Everything a worker needs travels in a picklable `UnitJob`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.extract.catalog import TABLES, part_path, write_parts
from workbench.extract.discovery import PackageRef, source_path
from workbench.extract.planning import WorkUnit
from workbench.extract.records import ArticleResult, ExtractError
from workbench.extract.shards import SampleSpool
from workbench.fileio import CorruptFile, file_sha256, fsync_file, fsync_folder, read_json, write_json_atomically
from workbench.ustar import ShardWriter
from workbench.workspace import Workspace

STATS_SUFFIX = "_stats.json"
_MARKER_FIELDS = ("count", "pairs")  # what planning and reports read from every marker
log = logging.getLogger(__name__)

#: Called as `extractor(package_path, file_list_row=row_or_None)`, e.g. `default_extractor` or
#: `functools.partial(extract_package, config=ExtractConfig(min_side=64))`; must be picklable for Dask.
Extractor = Callable[..., ArticleResult]


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
class UnitJob:
    """Everything a worker needs to run one unit (picklable)."""

    root: Path
    unit: WorkUnit
    file_list_rows: tuple[dict[str, Any] | None, ...]
    extractor: Extractor
    on_package_error: Callable[[PackageRef, Exception], list[ExtractError]]


def stats_path(workspace: Workspace, unit: WorkUnit) -> Path:
    return workspace.shards / f"{unit.name}{STATS_SUFFIX}"


def shard_path(workspace: Workspace, unit: WorkUnit) -> Path:
    return workspace.shards / f"{unit.name}.tar"


def discard_unfinished(workspace: Workspace, unit: WorkUnit) -> None:
    """Remove what an interrupted attempt at `unit` may have renamed into place before its stats file."""
    shard_path(workspace, unit).unlink(missing_ok=True)
    for table in TABLES:
        part_path(workspace, table, unit.name).unlink(missing_ok=True)


def _read_marker(path: Path) -> dict[str, Any]:
    stats = read_json(path)
    if not isinstance(stats, dict) or not all(isinstance(stats.get(name), int) for name in _MARKER_FIELDS):
        raise CorruptFile(f"{path} is damaged (not a work unit's stats); it will be redone")
    return stats


def completed_stats(workspace: Workspace, units: Sequence[WorkUnit]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Stats of the units whose resume marker exists, by unit name, and a warning line per damaged marker.

    A damaged (empty, truncated, foreign) marker is removed with its unit's shard and parts, so the unit is
    redone instead of failing every later run.
    """
    done, warnings = {}, []
    for unit in units:
        path = stats_path(workspace, unit)
        if not path.exists():
            continue
        try:
            done[unit.name] = _read_marker(path)
        except CorruptFile as error:
            warnings.append(str(error))
            log.warning("%s", error)
            discard_unfinished(workspace, unit)
            path.unlink(missing_ok=True)
    return done, warnings


# ---------------------------------------------------------------------------------------------------- running


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


def _place_durably(moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename finished scratch files into place, each fsynced first, then fsync the folders they landed in."""
    for source, target in moves:
        fsync_file(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
    for folder in dict.fromkeys(target.parent for _, target in moves):
        fsync_folder(folder)


def run_unit(job: UnitJob) -> dict[str, Any]:
    """Extract a unit's packages into one shard + catalog parts, then write its stats (the resume marker).

    Everything is built in a private scratch folder under WS/tmp and renamed into place at the end (parts,
    then the shard, each made durable, then the stats file), so a unit killed half-way, or a machine that
    loses power, leaves nothing that looks finished.
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
        shard_sha256 = file_sha256(scratch / f"{unit.name}.tar")  # still in the page cache; saves subsets a re-read
        moves = [(parts[table], part_path(workspace, table, unit.name)) for table in TABLES]
        _place_durably([*moves, (scratch / f"{unit.name}.tar", shard_path(workspace, unit))])
        stats = _unit_stats(unit, collected, len(ordered), shard_path(workspace, unit).stat().st_size, started)
        stats["sha256"] = shard_sha256
        write_json_atomically(stats, stats_path(workspace, unit))
        return stats
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

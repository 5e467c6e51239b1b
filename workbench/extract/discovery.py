"""What there is to extract, and the job state extraction reads: packages on disk or in `downloads`, file-list
rows, and the `pubmed` fingerprint the catalog manifest records.

Extraction reads other stages' state only through their published interfaces: acquisition's `done_downloads`
and `file_list_rows` (WS/state/), enrichment's `pubmed_fingerprint` (WS/catalog/pubmed.parquet).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from workbench.acquire.state import done_downloads, file_list_rows
from workbench.enrich.store import pubmed_fingerprint
from workbench.errors import UserError
from workbench.workspace import Workspace

if TYPE_CHECKING:
    from workbench.extract.catalog import Superseded

PACKAGE_SUFFIXES = (".tar.gz", ".tgz")
_PMCID = re.compile(r"PMC\d+")


@dataclass(frozen=True)
class PackageRef:
    """One package to extract: `source` is relative to the workspace when inside it, else absolute."""

    source: str
    pmcid: str
    version: str | None = None  # sha256 or Last Updated from `downloads`; a change means re-extract


@dataclass(frozen=True)
class Candidate:
    package: PackageRef
    file_list_row: dict[str, Any] | None


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
        raise UserError(f"package path not found: {path}")
    if path.is_file():
        if not _is_package_file(path):
            raise UserError(f"{path} is not a PMC package (.tar.gz/.tgz) or an extracted package folder")
        return [path]
    if any(path.glob("*.nxml")):
        return [path]
    found = {p for p in path.rglob("*") if p.is_file() and _is_package_file(p)}
    found |= {p.parent for p in path.rglob("*.nxml")}
    return sorted(found)


def _packages_under_mirror(workspace: Workspace) -> list[Path]:
    if not workspace.mirror.is_dir():
        return []
    return sorted(p for p in workspace.mirror.rglob("*") if p.is_file() and _is_package_file(p))


# ---------------------------------------------------------------------------------------------------- job state

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


def _catalog_state(workspace: Workspace, complete: set[str], superseded: Sequence[Superseded]) -> dict[str, Any]:
    return {
        "units": sorted(complete),
        "superseded": sorted([s.unit_name, s.pmcid] for s in superseded),
        "pubmed": pubmed_fingerprint(workspace),
    }

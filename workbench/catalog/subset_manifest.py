"""A subset's manifest: reading and checking one, source checksums, and what differs between two of them.

`manifest.json` records the filter, the counts by licence, the source shards' and output shards' SHA-256,
the catalog state the rows came from (`catalog_state`), the sample-JSON overlay and the tool versions. A
manifest may come from elsewhere (a colleague, a paper): every `source_shards` path is checked to be a
regular file inside WS/shards before anything is opened.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from workbench.catalog.checksums import ChecksumCache, read_small_file, shard_path
from workbench.catalog.db import Catalog
from workbench.errors import UserError

MANIFEST = "manifest.json"
SIZES = "sizes.json"
ROWS = "figures.parquet"
KEYS = "keys.txt"
MANIFEST_FORMAT = 2  # 2: .json members carry the catalog's current metadata; `catalog_state` recorded
READABLE_FORMATS = (1, 2)
MAX_MANIFEST_BYTES = 64 << 20
_REQUIRED = ("format", "name", "filter", "shard_samples", "source_shards", "shards")


class SubsetError(UserError):
    """A subset that cannot be written as asked (bad name, changed sources, catalog out of step with shards)."""


def tool_versions() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    workbench = version("biomedica-workbench")
    return {"biomedica-workbench": workbench, "duckdb": duckdb.__version__, "pyarrow": pa.__version__}


def catalog_state(catalog: Catalog) -> dict[str, str]:
    """The catalog state the selected rows come from (which Parquet files and annotations were materialised)."""
    return {str(name): str(value) for name, value in catalog.state().items()}


def read_manifest(path: str | Path, catalog: Catalog | None = None) -> dict[str, Any]:
    """Parse and check a manifest; with `catalog`, every source shard must lie inside its WS/shards."""
    path = Path(path)
    try:
        manifest = json.loads(read_small_file(path, MAX_MANIFEST_BYTES, "subset manifest"))
    except FileNotFoundError as error:
        raise SubsetError(f"no subset manifest at {path}") from error
    except (OSError, UserError) as error:
        raise SubsetError(f"{path} cannot be read as a subset manifest ({error})") from error
    except ValueError as error:  # invalid JSON or UTF-8
        raise SubsetError(f"{path} is not a subset manifest ({error})") from error
    if not isinstance(manifest, dict):
        raise SubsetError(f"{path} is not a subset manifest (not a JSON object)")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise SubsetError(f"{path} is not a subset manifest (missing {', '.join(missing)})")
    if manifest["format"] not in READABLE_FORMATS:
        raise SubsetError(f"{path}: manifest format {manifest['format']} is not supported (expected {MANIFEST_FORMAT})")
    sources, shards = manifest["source_shards"], manifest["shards"]
    if not isinstance(sources, dict) or not isinstance(shards, dict):
        raise SubsetError(f"{path}: source_shards and shards must be JSON objects")
    for relative, recorded in sources.items():
        if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
            raise SubsetError(f"{path}: source shard {relative!r} has no sha256")
    if catalog is not None:
        for relative in sources:
            try:
                shard_path(catalog.workspace, relative)
            except FileNotFoundError:
                pass  # reported with the other changed sources
            except UserError as error:
                raise SubsetError(f"{path}: {error}") from None
    return manifest


def source_checksums(catalog: Catalog, shards: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{relative: {sha256, bytes}} of source shards (cached; only files inside WS/shards are hashed)."""
    checksums = ChecksumCache(catalog.workspace)
    try:
        result = {}
        for shard in sorted(shards):
            digest, size = checksums.sha256(shard)
            result[shard] = {"sha256": digest, "bytes": size}
        return result
    finally:
        checksums.save()


def changed_sources(catalog: Catalog, recorded: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Source shards whose bytes differ from `recorded` (or are missing)."""
    checksums = ChecksumCache(catalog.workspace)
    changed = []
    try:
        for shard, entry in sorted(recorded.items()):
            try:
                digest, _size = checksums.sha256(shard)
            except FileNotFoundError:
                changed.append(f"{shard} (missing)")
                continue
            if digest != entry.get("sha256"):
                changed.append(shard)
    finally:
        checksums.save()
    return changed


def outputs_intact(folder: Path, manifest: Mapping[str, Any]) -> bool:
    """Whether every shard and file a manifest lists is in `folder` with its recorded size (no reading)."""
    for name, info in manifest.get("shards", {}).items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != info.get("bytes"):
            return False
    return all((folder / name).is_file() for name in (*manifest.get("files", {}), SIZES, ROWS, KEYS))


def shard_differences(recorded: Mapping[str, Any], produced: Mapping[str, Any]) -> list[str]:
    """Output shards (and files) whose SHA-256 differs between two manifests."""
    different = []
    for section in ("shards", "files"):
        old, new = recorded.get(section) or {}, produced.get(section) or {}
        for name in sorted(set(old) | set(new)):
            before, after = (old.get(name) or {}), (new.get(name) or {})
            if section == "files":
                before, after = {"sha256": old.get(name)}, {"sha256": new.get(name)}
            if before.get("sha256") != after.get("sha256"):
                different.append(name)
    return different


def explain_difference(recorded: Mapping[str, Any], produced: Mapping[str, Any]) -> str:
    """Why a rebuilt subset differs: the catalog state then and now, or the tool versions."""
    then, now = recorded.get("catalog_state"), produced.get("catalog_state") or {}
    reasons = []
    if then is None:
        reasons.append("the manifest predates per-sample metadata in .json members (format 1, no catalog_state)")
    elif then != now:
        changed = sorted(name for name in set(then) | set(now) if then.get(name) != now.get(name))
        reasons.append(
            "the catalog changed since the manifest: "
            + "; ".join(f"{name}: {then.get(name)!r} then, {now.get(name)!r} now" for name in changed)
        )
    if None not in (recorded.get("samples"), produced.get("samples")) and recorded["samples"] != produced["samples"]:
        reasons.append(f"{recorded['samples']} samples then, {produced.get('samples')} now")
    if recorded.get("tool") != produced.get("tool"):
        reasons.append(f"tool versions then: {recorded.get('tool')}, now: {produced.get('tool')}")
    return "; ".join(reasons) or "the catalog state and tool versions are the same (unexpected: please report it)"

"""Subsets: the selected samples copied by offset into new WebDataset shards under WS/subsets/NAME/.

The folder holds the shards (`.jpg`/`.txt` byte-identical to the source, `.json` carrying the catalog's
current metadata: `subset_copy`), `sizes.json` (samples per shard, as open_clip reads it), `figures.parquet`
(the rows, with shard/offsets pointing into the subset), `keys.txt` and `manifest.json` (`subset_manifest`),
from which `reproduce_subset` rebuilds it byte for byte while the catalog's metadata is unchanged. Split,
balanced or shuffled subsets (`subset_split`) pass their planned rows in write order and live in
WS/subsets/NAME/SPLIT/ when split; their manifest records the sampling (seed, fractions, caps, exclusions).

A subset is built in a locked folder WS/tmp/subset-NAME-PID-XXXX and renamed into place; folders left by
interrupted runs (no process holds their lock) are removed by the next run. Whether an existing subset is
already up to date (same selection, same catalog state, same source shards, outputs present) is decided
before anything is written, so an identical re-run copies nothing.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from workbench.catalog.db import Catalog
from workbench.catalog.filters import FigureFilter
from workbench.catalog.sandbox import canonical_where
from workbench.catalog.subset_copy import (
    CURRENT_METADATA,
    SAMPLE_JSON,
    LicenceViolation,
    ShardSeries,
    SourceShards,
    check_licence,
    copy_batch,
)
from workbench.catalog.subset_manifest import (
    KEYS,
    MANIFEST,
    MANIFEST_FORMAT,
    ROWS,
    SIZES,
    SubsetError,
    catalog_state,
    changed_sources,
    explain_difference,
    outputs_intact,
    read_manifest,
    shard_differences,
    source_checksums,
    tool_versions,
)
from workbench.fileio import CorruptFile, file_sha256, fsync_file, fsync_folder, read_json, write_json_atomically

__all__ = [
    "LicenceViolation",
    "SubsetDiffers",
    "SubsetError",
    "SubsetExists",
    "SubsetResult",
    "SubsetSpec",
    "clean_stale_work",
    "materialise_subset",
    "read_manifest",
    "reproduce_subset",
    "tool_versions",
]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_WORK_PREFIX = "subset-"
_NEW_PREFIX = ".subset-new-"
_ABANDONED_S = 3600.0


class SubsetExists(SubsetError):
    """WS/subsets/NAME holds a different subset and `force` was not given."""


class SubsetDiffers(RuntimeError):
    """A subset rebuilt from its manifest is not byte-identical (exit 1); kept only with `force`."""


@dataclass(frozen=True)
class SubsetSpec:
    """What to materialise: a name (a folder under WS/subsets), a selection, samples per output shard."""

    name: str
    selection: FigureFilter = field(default_factory=FigureFilter)
    shard_samples: int = 10_000
    force: bool = False
    split: str | None = None  # the output WS/subsets/NAME/SPLIT of a split subset
    sampling: dict[str, Any] | None = None  # how the rows were planned (`subset_split.Sampling.to_dict`)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name) or ".." in self.name:
            raise SubsetError(
                f"invalid subset name {self.name!r}: use letters, digits, '_', '-', '.' "
                f"(at most 100, starting with a letter or digit)"
            )
        if not isinstance(self.shard_samples, int) or isinstance(self.shard_samples, bool) or self.shard_samples < 1:
            raise SubsetError(f"shard_samples must be 1 or more, got {self.shard_samples!r}")
        if self.split is not None and (not _NAME.match(self.split) or ".." in self.split):
            raise SubsetError(f"invalid split name {self.split!r}")
        if self.selection.where:
            canonical_where(self.selection.where, deterministic=True)

    @property
    def label(self) -> str:
        return f"{self.name}/{self.split}" if self.split else self.name

    def selection_dict(self) -> dict[str, Any]:
        chosen = {"filter": self.selection.to_dict(), "shard_samples": self.shard_samples}
        return chosen | ({"sampling": self.sampling, "split": self.split} if self.sampling is not None else {})


@dataclass(frozen=True)
class SubsetResult:
    path: Path
    samples: int
    shards: int
    shard_bytes: int
    counts_by_license_group: dict[str, int]
    unchanged: bool
    seconds: float
    note: str = ""

    @classmethod
    def of(cls, path: Path, manifest: dict[str, Any], unchanged: bool, seconds: float, note: str = "") -> SubsetResult:
        shards = manifest["shards"]
        size = sum(info["bytes"] for info in shards.values())
        groups = manifest["counts_by_license_group"]
        return cls(path, manifest["samples"], len(shards), size, groups, unchanged, seconds, note)

    @property
    def megabytes_per_second(self) -> float:
        return self.shard_bytes / 1e6 / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        groups = ", ".join(f"{group}: {n}" for group, n in sorted(self.counts_by_license_group.items())) or "none"
        if self.unchanged:
            return f"{self.path}: already up to date ({self.samples} samples in {self.shards} shards; {groups})"
        text = (
            f"{self.path}: {self.samples} samples in {self.shards} shards, {self.shard_bytes / 1e6:.1f} MB "
            f"in {self.seconds:.1f} s ({self.megabytes_per_second:.0f} MB/s); licence groups {groups}"
        )
        return f"{text}\n{self.note}" if self.note else text


# --- work folders ---------------------------------------------------------------------------------------------
def clean_stale_work(tmp: Path) -> list[Path]:
    """Remove WS/tmp/subset-* folders no live process holds locked (left by interrupted runs); return them."""
    removed = []
    candidates = sorted(tmp.glob(f"{_WORK_PREFIX}*")) if tmp.is_dir() else []
    for folder in sorted(tmp.glob(f"{_NEW_PREFIX}*")) if tmp.is_dir() else []:
        with suppress(OSError):  # created but not yet locked: only when clearly abandoned
            if time.time() - folder.stat().st_mtime > _ABANDONED_S:
                candidates.append(folder)
    for folder in candidates:
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a running subset
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


@contextmanager
def _work_folder(tmp: Path, name: str) -> Iterator[Path]:
    """A fresh folder under WS/tmp, locked while this process works in it and removed if the block fails."""
    tmp.mkdir(parents=True, exist_ok=True)
    hidden = tmp / f"{_NEW_PREFIX}{uuid.uuid4().hex}"  # locked before it gets a name the cleaner looks at
    hidden.mkdir()
    fd = os.open(hidden, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        folder = tmp / f"{_WORK_PREFIX}{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        hidden.rename(folder)
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(hidden, ignore_errors=True)
        os.close(fd)


def _install(folder: Path, target: Path, manifest: dict[str, Any], force: bool, refusal: str) -> bool:
    """Rename the finished `folder` to `target` durably; False when `target` already holds the same bytes.

    Then only its manifest is replaced (it may record a newer catalog state); the same subset with files
    missing is replaced (repaired). A different subset at `target` is replaced only with `force`; otherwise
    `SubsetExists(refusal)`.
    """
    for path in folder.iterdir():
        fsync_file(path)
    fsync_folder(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        existing = _existing(target)
        same = existing is not None and all(existing.get(k) == manifest.get(k) for k in ("shards", "files"))
        if same and outputs_intact(target, existing):
            if existing != manifest:
                write_json_atomically(manifest, target / MANIFEST)
            shutil.rmtree(folder)
            return False
        if not (force or same):  # the same subset with files missing is repaired
            raise SubsetExists(refusal)
        retired = folder.with_name(folder.name + ".old")
        target.rename(retired)
        folder.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        folder.rename(target)
    fsync_folder(target.parent)
    return True


# --- building -------------------------------------------------------------------------------------------------
def _rows_summary(rows: pa.Table) -> list[tuple[str, str, int]]:
    """(licence group, licence, samples) of planned rows, like `Catalog.selection_summary`."""
    counts = Counter(zip(rows.column("license_group").to_pylist(), rows.column("license").to_pylist(), strict=True))
    return sorted((group, lic or "", n) for (group, lic), n in counts.items())


def _build(
    catalog: Catalog, spec: SubsetSpec, folder: Path, progress: bool, verify_images: bool, rows: pa.Table | None = None
) -> dict[str, Any]:
    """Write the subset into `folder` (the selection in key order, or the planned `rows` in their order)."""
    state = catalog_state(catalog)
    allowed = frozenset(spec.selection.license_groups)
    summary = catalog.selection_summary(spec.selection) if rows is None else _rows_summary(rows)
    for group, _licence, samples in summary:  # refuse before writing anything
        check_licence(allowed, f"{samples} selected sample(s)", group)
    total = sum(samples for _, _, samples in summary)
    sources = SourceShards(catalog.workspace)
    output = ShardSeries(folder, spec.shard_samples)
    groups: Counter = Counter()
    reader = catalog.selected_rows(spec.selection) if rows is None else rows.to_reader(max_chunksize=65_536)
    writer = pq.ParquetWriter(folder / ROWS, reader.schema, compression="zstd")
    verifier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="subset-verify") if verify_images else None
    try:
        with (
            open(folder / KEYS, "w", encoding="utf-8", newline="\n") as keys_file,
            tqdm(total=total, desc=f"subset {spec.label}", unit="sample", disable=not progress) as bar,
        ):
            for batch in reader:
                rewritten, batch_groups = copy_batch(batch, sources, output, allowed, keys_file, verifier)
                writer.write_batch(rewritten)
                groups.update(batch_groups)
                bar.update(batch.num_rows)
        output.close()
    finally:
        output.abort()
        writer.close()
        sources.close()
        if verifier is not None:
            verifier.shutdown(wait=True, cancel_futures=True)
    if sum(groups.values()) != total or catalog_state(catalog) != state:
        raise SubsetError(
            f"the catalog changed while the subset was written ({total} rows counted, "
            f"{sum(groups.values())} copied); re-run"
        )
    sizes = {name: info["samples"] for name, info in output.shards.items()}
    write_json_atomically(sizes, folder / SIZES)
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": spec.label,
        **spec.selection_dict(),
        "filter_description": spec.selection.describe(),
        "samples": total,
        "counts_by_license_group": dict(sorted(groups.items())),
        "licenses": [{"license_group": g, "license": lic or None, "samples": n} for g, lic, n in summary],
        "license_groups_present": sorted(groups),
        "catalog_state": state,
        "sample_json": {"format": SAMPLE_JSON, "current_metadata": dict(sorted(CURRENT_METADATA.items()))},
        "source_shards": source_checksums(catalog, sources.used),
        "shards": output.shards,
        "files": {name: file_sha256(folder / name) for name in (ROWS, KEYS, SIZES)},
        "tool": tool_versions(),
    }
    write_json_atomically(manifest, folder / MANIFEST)
    return manifest


def _existing(target: Path) -> dict[str, Any] | None:
    """The manifest of the subset at `target` (None when there is no subset there or its manifest is damaged)."""
    try:
        manifest = read_json(target / MANIFEST)
    except (FileNotFoundError, NotADirectoryError, CorruptFile):
        return None
    return manifest if isinstance(manifest, dict) else None


def _selection_of(manifest: dict[str, Any]) -> dict[str, Any]:
    chosen = {"filter": manifest.get("filter"), "shard_samples": manifest.get("shard_samples")}
    return chosen | ({key: manifest.get(key) for key in ("sampling", "split")} if "sampling" in manifest else {})


def _up_to_date(catalog: Catalog, target: Path, manifest: dict[str, Any], spec: SubsetSpec, state: dict) -> bool:
    """Same selection, same catalog state, same source shards, every output present: nothing to do."""
    return (
        manifest.get("format") == MANIFEST_FORMAT
        and _selection_of(manifest) == spec.selection_dict()
        and bool(state)
        and manifest.get("catalog_state") == state
        and outputs_intact(target, manifest)
        and not changed_sources(catalog, manifest.get("source_shards") or {})
    )


def materialise_subset(
    catalog: Catalog,
    spec: SubsetSpec,
    *,
    progress: bool = True,
    verify_images: bool = True,
    rows: pa.Table | None = None,
) -> SubsetResult:
    """Write WS/subsets/<name>/ for the selection; an identical, current subset is left as it is (nothing copied).

    An existing subset of that name with another selection is replaced only with `spec.force`. One with
    the same selection built from an older catalog state is rebuilt: when the bytes come out the same, only
    its manifest's `catalog_state` is brought up to date; when they differ, `spec.force` is needed. `rows`
    (planned by `subset_split`, with `spec.sampling` saying how) replace the selection's rows in key order.
    """
    started = time.perf_counter()
    clean_stale_work(catalog.workspace.tmp)
    target = catalog.workspace.subsets / spec.name
    if spec.split:
        target = target / spec.split
    refusal = f"{target} was written by another process meanwhile; re-run, or pass --force"
    if target.exists():
        existing = _existing(target)
        if existing is not None and _up_to_date(catalog, target, existing, spec, catalog_state(catalog)):
            return SubsetResult.of(target, existing, True, time.perf_counter() - started)
        selection = existing and _selection_of(existing)
        if existing is None and not spec.force:
            raise SubsetExists(f"{target} exists but is not a subset (no readable {MANIFEST}); pass --force")
        if selection != spec.selection_dict() and not spec.force:
            raise SubsetExists(f"{target} holds a subset with a different selection; choose another name or --force")
        refusal = (
            f"{target} holds this selection built from an older catalog state, and the samples' data differ "
            f"now ({explain_difference(existing, {'catalog_state': catalog_state(catalog), 'tool': tool_versions()})});"
            f" pass --force to replace it, or choose another name"
        )
    with _work_folder(catalog.workspace.tmp, spec.label.replace("/", "-")) as folder:
        manifest = _build(catalog, spec, folder, progress, verify_images, rows)
        written = _install(folder, target, manifest, spec.force, refusal)
    return SubsetResult.of(target, manifest, not written, time.perf_counter() - started)


def reproduce_subset(
    catalog: Catalog, manifest_path: str | Path, *, name: str | None = None, force: bool = False, progress: bool = True
) -> SubsetResult:
    """Rebuild the subset a manifest describes (under its name, or `name`) and check it matches byte for byte.

    Every source shard the manifest names must be a regular file inside WS/shards (else `SubsetError`,
    nothing read). When the rebuilt shards differ (the catalog's metadata changed since), `SubsetDiffers`
    names them and says why; with `force` the rebuilt subset is kept instead.
    """
    started = time.perf_counter()
    manifest = read_manifest(manifest_path, catalog)
    if manifest.get("sampling") is not None:
        raise SubsetError(
            f"{manifest_path} describes a split/balanced subset: rebuild it with the same `workbench subset` "
            f"command (its sampling: {manifest['sampling']})"
        )
    clean_stale_work(catalog.workspace.tmp)
    try:
        selection = FigureFilter.from_dict(manifest["filter"])
    except (TypeError, ValueError) as error:
        raise SubsetError(f"{manifest_path}: its filter cannot be read ({error})") from None
    spec = SubsetSpec(name or manifest["name"], selection, manifest["shard_samples"], force)
    changed = changed_sources(catalog, manifest["source_shards"])
    if changed:
        raise SubsetError(
            f"cannot reproduce {manifest_path} byte for byte: source shard(s) changed since the manifest: "
            f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}"
        )
    target = catalog.workspace.subsets / spec.name
    if target.exists():
        existing = _existing(target)
        same = existing is not None and all(existing.get(k) == manifest.get(k) for k in ("shards", "files"))
        if same and outputs_intact(target, existing):
            return SubsetResult.of(target, existing, True, time.perf_counter() - started)
        if not force:
            raise SubsetExists(f"{target} holds a different subset; choose another name (--name) or pass --force")
    with _work_folder(catalog.workspace.tmp, spec.name) as folder:
        produced = _build(catalog, spec, folder, progress, verify_images=True)
        different = shard_differences(manifest, produced)
        note = ""
        if different:
            shown = ", ".join(different[:8]) + (" ..." if len(different) > 8 else "")
            message = (
                f"the subset rebuilt from {manifest_path} differs in {len(different)} file(s) ({shown}): "
                f"{explain_difference(manifest, produced)}"
            )
            if not force:
                raise SubsetDiffers(f"{message}; nothing was kept (pass --force to keep the rebuilt subset)")
            note = f"kept with --force: {message}"
        refusal = f"{target} holds a different subset; choose another name (--name) or pass --force"
        written = _install(folder, target, produced, force, refusal)
    return SubsetResult.of(target, produced, not written, time.perf_counter() - started, note)

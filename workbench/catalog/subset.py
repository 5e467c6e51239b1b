"""Subsets: the selected samples copied by offset into new WebDataset shards under WS/subsets/NAME/.

No decoding or re-encoding: each sample's members are read from their source shard with one `pread` at the
catalog's offsets and written behind new ustar headers with the same member names (the extraction's header
format: fixed mtime/mode/uid, so the same selection always gives the same bytes). The folder holds the shards,
`sizes.json` (samples per shard, as open_clip reads it), `figures.parquet` (the rows, with shard/offsets
pointing into the subset), `keys.txt` and `manifest.json` (filter, counts by licence, source shard checksums,
output checksums, tool versions), from which `reproduce_subset` rebuilds it byte for byte. Every row's licence
group is checked against the filter before its sample is written, and JPEG bytes against `image_sha256`.
The folder is built under WS/tmp and renamed into place.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from workbench.catalog.checksums import ChecksumCache, file_sha256
from workbench.catalog.db import Catalog
from workbench.catalog.filters import FigureFilter
from workbench.ustar import BLOCK, RECORD, member_headers

MANIFEST = "manifest.json"
SIZES = "sizes.json"
ROWS = "figures.parquet"
KEYS = "keys.txt"
MANIFEST_FORMAT = 1
MEMBERS = ("jpg", "txt", "json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAX_OPEN_SOURCES = 64


class SubsetError(ValueError):
    """A subset that cannot be written as asked (bad name, changed sources, catalog out of step with shards)."""


class SubsetExists(SubsetError):
    """WS/subsets/NAME holds a different subset and `force` was not given."""


class LicenceViolation(SubsetError):
    """A selected row's licence group is not one the filter allows (never written)."""


@dataclass(frozen=True)
class SubsetSpec:
    """What to materialise: a name (a folder under WS/subsets), a selection, samples per output shard."""

    name: str
    selection: FigureFilter = field(default_factory=FigureFilter)
    shard_samples: int = 10_000
    force: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or ".." in self.name:
            raise SubsetError(
                f"invalid subset name {self.name!r}: use letters, digits, '_', '-', '.' "
                f"(at most 100, starting with a letter or digit)"
            )
        if self.shard_samples < 1:
            raise SubsetError(f"shard_samples must be 1 or more, got {self.shard_samples}")


@dataclass(frozen=True)
class SubsetResult:
    path: Path
    samples: int
    shards: int
    shard_bytes: int
    counts_by_license_group: dict[str, int]
    unchanged: bool
    seconds: float

    @property
    def megabytes_per_second(self) -> float:
        return self.shard_bytes / 1e6 / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        groups = ", ".join(f"{group}: {n}" for group, n in sorted(self.counts_by_license_group.items())) or "none"
        if self.unchanged:
            return f"{self.path}: already up to date ({self.samples} samples in {self.shards} shards; {groups})"
        return (
            f"{self.path}: {self.samples} samples in {self.shards} shards, {self.shard_bytes / 1e6:.1f} MB "
            f"in {self.seconds:.1f} s ({self.megabytes_per_second:.0f} MB/s); licence groups {groups}"
        )


def tool_versions() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "biomedica-workbench": version("biomedica-workbench"),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
    }


class _SourceShards:
    """Open source shards (a bounded number of file descriptors) and read a sample's span with one pread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fds: dict[str, int] = {}
        self.used: set[str] = set()

    def read(self, shard: str, start: int, length: int) -> bytes:
        fd = self._fds.get(shard)
        if fd is None:
            if len(self._fds) >= _MAX_OPEN_SOURCES:
                os.close(self._fds.pop(next(iter(self._fds))))
            path = self.root / shard
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError as error:
                raise SubsetError(f"source shard {path} is missing; re-run `workbench extract`") from error
            self._fds[shard] = fd
            self.used.add(shard)
        data = os.pread(fd, length, start)
        if len(data) != length:
            raise SubsetError(
                f"{self.root / shard}: {length} bytes at offset {start} run past the end of the "
                f"shard; the catalog is out of step with the shards"
            )
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _update(digest: Any, chunks: list[bytes | memoryview]) -> None:
    for chunk in chunks:
        digest.update(chunk)


def _write_all(fd: int, chunks: list[bytes | memoryview]) -> None:
    """One `writev` per sample (headers, data and padding without joining them); finish short writes."""
    written = os.writev(fd, chunks)
    total = sum(len(chunk) for chunk in chunks)
    if written < total:
        rest = b"".join(bytes(chunk) for chunk in chunks)[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


class _ShardSeries:
    """Numbered output shards (000000.tar, ...) of at most `per_shard` samples, hashed while written.

    Each sample is written with one `writev`; its SHA-256 update runs on a helper thread (hashlib releases
    the GIL), in write order, so hashing overlaps with reading and writing the next samples.
    """

    def __init__(self, folder: Path, per_shard: int) -> None:
        self.folder = folder
        self.per_shard = per_shard
        self.shards: dict[str, dict[str, Any]] = {}
        self._fd: int | None = None
        self._name = ""
        self._digest = hashlib.sha256()
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="subset-sha256")
        self._offset = 0
        self._samples = 0

    def _write(self, chunks: list[bytes | memoryview]) -> None:
        _write_all(self._fd, chunks)
        self._hasher.submit(_update, self._digest, chunks)
        self._offset += sum(len(chunk) for chunk in chunks)

    def _open_next(self) -> None:
        self._name = f"{len(self.shards):06d}.tar"
        self._fd = os.open(self.folder / self._name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._digest, self._offset, self._samples = hashlib.sha256(), 0, 0
        self.shards[self._name] = {}

    def _finish(self) -> None:
        end = 2 * BLOCK
        self._write([b"\0" * (end + (-(self._offset + end) % RECORD))])
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        digest = self._hasher.submit(self._digest.hexdigest).result()  # after every queued update
        self.shards[self._name] = {"samples": self._samples, "bytes": self._offset, "sha256": digest}

    def add(self, key: str, members: list[tuple[str, memoryview]]) -> tuple[str, dict[str, int]]:
        """Write one sample's members in order; returns the shard name and each member's data offset."""
        if self._fd is None:
            self._open_next()
        offsets, chunks, position = {}, [], self._offset
        for ext, data in members:
            header = member_headers(f"{key}.{ext}", len(data))
            offsets[ext] = position + len(header)
            padding = -len(data) % BLOCK
            chunks += [header, data, b"\0" * padding] if padding else [header, data]
            position += len(header) + len(data) + padding
        self._write(chunks)
        self._samples += 1
        name = self._name
        if self._samples >= self.per_shard:
            self._finish()
        return name, offsets

    def close(self) -> None:
        """Finish the last shard (a complete archive) and stop the hashing thread."""
        try:
            if self._fd is not None:
                self._finish()
        finally:
            self._hasher.shutdown(wait=True)

    def abort(self) -> None:
        """Stop after a failure: close what is open; the caller removes the folder."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._hasher.shutdown(wait=True, cancel_futures=True)


def _check_licence(allowed: frozenset[str], key: str, group: str) -> None:
    if allowed and group not in allowed:
        raise LicenceViolation(
            f"{key} has licence group {group!r}, outside the filter's {sorted(allowed)}; nothing was written"
        )


_NEEDED = (
    "key",
    "license_group",
    "shard",
    "image_sha256",
    *(f"{ext}_{what}" for ext in MEMBERS for what in ("offset", "size")),
)


def _sha256_hex(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _copy_batch(
    batch: pa.RecordBatch,
    sources: _SourceShards,
    output: _ShardSeries,
    allowed: frozenset[str],
    keys_file: Any,
    verifier: ThreadPoolExecutor | None,
) -> tuple[pa.RecordBatch, Counter]:
    """Copy a batch's samples; return the batch with shard/offsets rewritten and its licence-group counts.

    Licence groups are checked for the whole batch before any of its samples is written. With a `verifier`,
    each JPEG's SHA-256 is compared with `image_sha256` (on a helper thread; any mismatch fails the subset).
    """
    groups: Counter = Counter()
    for key, group in zip(batch.column("key").to_pylist(), batch.column("license_group").to_pylist(), strict=True):
        _check_licence(allowed, key, group)
        groups[group] += 1
    columns = {name: batch.column(name).to_pylist() for name in _NEEDED}
    new_shard: list[str] = []
    new_offsets: dict[str, list[int]] = {ext: [] for ext in MEMBERS}
    checks = []
    for i, key in enumerate(columns["key"]):
        spans = sorted((columns[f"{ext}_offset"][i], columns[f"{ext}_size"][i], ext) for ext in MEMBERS)
        start, end = spans[0][0], spans[-1][0] + spans[-1][1]
        if spans[0][0] < 0 or any(a[0] + a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
            raise SubsetError(f"{key}: member offsets overlap in the catalog; re-run `workbench extract`")
        span = memoryview(sources.read(columns["shard"][i], start, end - start))
        members = [(ext, span[offset - start : offset - start + size]) for offset, size, ext in spans]
        if verifier is not None:
            jpg = next(data for ext, data in members if ext == "jpg")
            checks.append((i, verifier.submit(_sha256_hex, jpg)))
        shard, offsets = output.add(key, members)
        new_shard.append(shard)
        for ext in MEMBERS:
            new_offsets[ext].append(offsets[ext])
        keys_file.write(key + "\n")
    for i, check in checks:
        if check.result() != columns["image_sha256"][i]:
            raise SubsetError(
                f"{columns['key'][i]}: the bytes at {columns['shard'][i]}:{columns['jpg_offset'][i]} "
                f"are not its image (sha256 differs); the catalog is out of step with the shards — "
                f"re-run `workbench extract` and `workbench catalog refresh`"
            )
    schema = batch.schema
    replaced = {"shard": pa.array(new_shard, type=schema.field("shard").type)}
    replaced.update(
        {
            f"{ext}_offset": pa.array(values, type=schema.field(f"{ext}_offset").type)
            for ext, values in new_offsets.items()
        }
    )
    arrays = [replaced.get(name, batch.column(i)) for i, name in enumerate(schema.names)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema), groups


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _selection_of(manifest: dict[str, Any]) -> dict[str, Any]:
    return {"filter": manifest.get("filter"), "shard_samples": manifest.get("shard_samples")}


def _build(
    catalog: Catalog, spec: SubsetSpec, folder: Path, progress: bool, verify_images: bool
) -> tuple[dict[str, Any], int]:
    """Write the subset into `folder`; return its manifest and the seconds spent."""
    started = time.perf_counter()
    allowed = frozenset(spec.selection.license_groups)
    summary = catalog.selection_summary(spec.selection)
    for group, _licence, samples in summary:  # refuse before writing anything
        _check_licence(allowed, f"{samples} selected sample(s)", group)
    total = sum(samples for _, _, samples in summary)
    sources = _SourceShards(catalog.workspace.root)
    output = _ShardSeries(folder, spec.shard_samples)
    groups: Counter = Counter()
    reader = catalog.selected_rows(spec.selection)
    writer = pq.ParquetWriter(folder / ROWS, reader.schema, compression="zstd")
    verifier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="subset-verify") if verify_images else None
    try:
        with (
            open(folder / KEYS, "w", encoding="utf-8", newline="\n") as keys_file,
            tqdm(total=total, desc=f"subset {spec.name}", unit="sample", disable=not progress) as bar,
        ):
            for batch in reader:
                rewritten, batch_groups = _copy_batch(batch, sources, output, allowed, keys_file, verifier)
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
    if sum(groups.values()) != total:
        raise SubsetError(
            f"the catalog changed while the subset was written ({total} rows counted, "
            f"{sum(groups.values())} copied); re-run"
        )
    checksums = ChecksumCache(catalog.workspace)
    source_shards = {}
    for shard in sorted(sources.used):
        digest, size = checksums.sha256(shard)
        source_shards[shard] = {"sha256": digest, "bytes": size}
    checksums.save()
    sizes = {name: info["samples"] for name, info in output.shards.items()}
    (folder / SIZES).write_bytes(_json_bytes(sizes))
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": spec.name,
        "filter": spec.selection.to_dict(),
        "filter_description": spec.selection.describe(),
        "shard_samples": spec.shard_samples,
        "samples": total,
        "counts_by_license_group": dict(sorted(groups.items())),
        "licenses": [{"license_group": g, "license": lic or None, "samples": n} for g, lic, n in summary],
        "license_groups_present": sorted(groups),
        "source_shards": source_shards,
        "shards": output.shards,
        "files": {name: file_sha256(folder / name) for name in (ROWS, KEYS, SIZES)},
        "tool": tool_versions(),
    }
    (folder / MANIFEST).write_bytes(_json_bytes(manifest))
    return manifest, time.perf_counter() - started


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _install(folder: Path, target: Path, force: bool) -> bool:
    """Rename the finished `folder` to `target`; False when an identical subset is already there."""
    if target.exists():
        existing = target / MANIFEST
        if existing.exists() and existing.read_bytes() == (folder / MANIFEST).read_bytes():
            shutil.rmtree(folder)
            return False
        if not force:
            shutil.rmtree(folder)
            raise SubsetExists(f"{target} holds a different subset; choose another name or pass --force")
        retired = folder.with_name(folder.name + ".old")
        target.rename(retired)
        folder.rename(target)
        shutil.rmtree(retired)
        return True
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(target)
    return True


def materialise_subset(
    catalog: Catalog, spec: SubsetSpec, *, progress: bool = True, verify_images: bool = True
) -> SubsetResult:
    """Write WS/subsets/<name>/ for the selection; idempotent (an identical existing subset is left as is)."""
    target = catalog.workspace.subsets / spec.name
    existing = target / MANIFEST
    if target.exists() and not spec.force:
        if not existing.exists():
            raise SubsetExists(f"{target} exists but is not a subset (no {MANIFEST}); remove it or pass --force")
        wanted = {"filter": spec.selection.to_dict(), "shard_samples": spec.shard_samples}
        if _selection_of(json.loads(existing.read_text())) != wanted:
            raise SubsetExists(
                f"{target} holds a subset with a different selection; choose another name or pass --force"
            )
    catalog.workspace.tmp.mkdir(parents=True, exist_ok=True)
    folder = catalog.workspace.tmp / f"subset-{spec.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        manifest, seconds = _build(catalog, spec, folder, progress, verify_images)
        _fsync_folder(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    written = _install(folder, target, spec.force)
    return SubsetResult(
        target,
        manifest["samples"],
        len(manifest["shards"]),
        sum(info["bytes"] for info in manifest["shards"].values()),
        manifest["counts_by_license_group"],
        not written,
        seconds,
    )


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no subset manifest at {path}") from error
    except ValueError as error:
        raise SubsetError(f"{path} is not a subset manifest (invalid JSON: {error})") from error
    missing = [
        key for key in ("format", "name", "filter", "shard_samples", "source_shards", "shards") if key not in manifest
    ]
    if missing:
        raise SubsetError(f"{path} is not a subset manifest (missing {', '.join(missing)})")
    if manifest["format"] != MANIFEST_FORMAT:
        raise SubsetError(f"{path}: manifest format {manifest['format']} is not supported (expected {MANIFEST_FORMAT})")
    return manifest


def _check_sources(catalog: Catalog, sources: dict[str, dict[str, Any]]) -> None:
    checksums = ChecksumCache(catalog.workspace)
    changed = []
    for shard, recorded in sorted(sources.items()):
        try:
            digest, _size = checksums.sha256(shard)
        except FileNotFoundError:
            changed.append(f"{shard} (missing)")
            continue
        if digest != recorded["sha256"]:
            changed.append(shard)
    checksums.save()
    if changed:
        raise SubsetError(
            f"cannot reproduce byte for byte: source shard(s) changed since the manifest: "
            f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}"
        )


def _differences(recorded: dict[str, Any], produced: dict[str, Any]) -> Iterable[str]:
    for section in ("shards", "files"):
        if recorded.get(section) and recorded[section] != produced[section]:
            yield section
    if recorded.get("samples") is not None and recorded["samples"] != produced["samples"]:
        yield "samples"


def reproduce_subset(
    catalog: Catalog, manifest_path: str | Path, *, name: str | None = None, force: bool = False, progress: bool = True
) -> SubsetResult:
    """Rebuild the subset a manifest describes (under its name, or `name`) and check it matches byte for byte."""
    manifest = read_manifest(manifest_path)
    _check_sources(catalog, manifest["source_shards"])
    spec = SubsetSpec(
        name or manifest["name"], FigureFilter.from_dict(manifest["filter"]), manifest["shard_samples"], force
    )
    catalog.workspace.tmp.mkdir(parents=True, exist_ok=True)
    folder = catalog.workspace.tmp / f"subset-{spec.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        produced, seconds = _build(catalog, spec, folder, progress, verify_images=True)
        differences = list(_differences(manifest, produced))
        if differences:
            raise SubsetError(
                f"the rebuilt subset differs from {manifest_path} in {', '.join(differences)} "
                f"(tool versions then: {manifest.get('tool')}, now: {produced['tool']})"
            )
        _fsync_folder(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    target = catalog.workspace.subsets / spec.name
    written = _install(folder, target, force)
    return SubsetResult(
        target,
        produced["samples"],
        len(produced["shards"]),
        sum(info["bytes"] for info in produced["shards"].values()),
        produced["counts_by_license_group"],
        not written,
        seconds,
    )

"""Copying a selection into numbered subset shards: members by offset, current metadata in each `.json`.

Each sample's members are read from their source shard with one `pread` over the catalog's offsets. The
`.jpg` and `.txt` bytes are written unchanged behind fresh ustar headers (`workbench.ustar.ShardWriter`,
one `writev` per sample, SHA-256 computed while writing); the `.json` member is the source JSON with the
catalog row's current metadata (`CURRENT_METADATA`: MeSH terms, annotation labels, licence) merged over it,
written as `sample_json` does: sorted keys, compact separators, UTF-8, so the same rows give the same bytes.
Every row's licence group is checked against the filter before its batch is written, and each JPEG against
`image_sha256`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.catalog.checksums import open_regular, shard_path
from workbench.catalog.subset_manifest import SubsetError
from workbench.ustar import ShardWriter
from workbench.workspace import Workspace

MEMBERS = ("jpg", "txt", "json")
# sample JSON field -> catalog column whose current value it takes (columns the catalog lacks are skipped)
CURRENT_METADATA = {
    "article_mesh_terms": "article_mesh_terms",
    "license": "license",
    "article_license": "license",
    "license_group": "license_group",
    "concept": "concept",
    "concepts": "concepts",
    "panel_type": "panel_type",
    # BIOMEDICA's annotation fields, from the labels current when the subset is cut (`live_labels.LABEL_FIELDS`)
    "image_label_id": "image_label_id",
    "image_primary_label": "image_primary_label",
    "image_secondary_label": "image_secondary_label",
    "image_panel_type": "image_panel_type",
    "image_panel_subtype": "image_panel_subtype",
}
SAMPLE_JSON = "sorted keys, compact separators, UTF-8; catalog metadata merged over the source .json"
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
_MAX_OPEN_SOURCES = 64
_NEEDED = ("key", "license_group", "shard", "image_sha256", *(f"{e}_{w}" for e in MEMBERS for w in ("offset", "size")))


class LicenceViolation(SubsetError):
    """A selected row's licence group is not one the filter allows (never written)."""


class SourceShards:
    """Open source shards (a bounded number of file descriptors) and read a sample's span with one pread.

    Only regular files inside WS/shards are opened (`checksums.shard_path`).
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._fds: dict[str, int] = {}
        self.used: set[str] = set()

    def read(self, shard: str, start: int, length: int) -> bytes:
        fd = self._fds.get(shard)
        if fd is None:
            if len(self._fds) >= _MAX_OPEN_SOURCES:
                os.close(self._fds.pop(next(iter(self._fds))))
            try:
                fd, _ = open_regular(shard_path(self.workspace, shard))
            except FileNotFoundError as error:
                raise SubsetError(f"{error}; re-run `workbench extract`") from error
            self._fds[shard] = fd
            self.used.add(shard)
        data = os.pread(fd, length, start)
        if len(data) != length:
            raise SubsetError(
                f"{self.workspace.root / shard}: {length} bytes at offset {start} run past the end of the "
                f"shard; the catalog is out of step with the shards"
            )
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class ShardSeries:
    """Numbered output shards (000000.tar, ...) of at most `per_shard` samples, hashed while written."""

    def __init__(self, folder: Path, per_shard: int) -> None:
        self.folder = folder
        self.per_shard = per_shard
        self.shards: dict[str, dict[str, Any]] = {}
        self._writer: ShardWriter | None = None
        self._name = ""

    def add(self, key: str, members: Mapping[str, bytes | memoryview]) -> tuple[str, dict[str, int]]:
        """Write one sample's members in order; returns the shard name and each member's data offset."""
        if self._writer is None:
            self._name = f"{len(self.shards):06d}.tar"
            self._writer = ShardWriter(self.folder / self._name, sha256=True, exclusive=True)
            self.shards[self._name] = {}
        locations = self._writer.add_sample(key, members)
        name = self._name
        if self._writer.samples >= self.per_shard:
            self._finish()
        return name, {ext: location.offset for ext, location in locations.items()}

    def _finish(self) -> None:
        writer, self._writer = self._writer, None
        writer.close()
        self.shards[self._name] = {"samples": writer.samples, "bytes": writer.bytes_written, "sha256": writer.sha256}

    def close(self) -> None:
        """Finish the last shard (a complete archive)."""
        if self._writer is not None:
            self._finish()

    def abort(self) -> None:
        """Stop after a failure: close what is open; the caller removes the folder."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def check_licence(allowed: frozenset[str], key: str, group: str) -> None:
    if allowed and group not in allowed:
        raise LicenceViolation(
            f"{key} has licence group {group!r}, outside the filter's {sorted(allowed)}; nothing was written"
        )


def sample_json(source: bytes | memoryview, current: Mapping[str, Any], key: str) -> bytes:
    """The source `.json` member with the catalog's current metadata merged over it, in fixed bytes."""
    try:
        data = json.loads(bytes(source))
    except ValueError as error:
        raise SubsetError(f"{key}: its .json member is not JSON ({error}); the catalog is out of step") from None
    if not isinstance(data, dict):
        raise SubsetError(f"{key}: its .json member is not a JSON object; the catalog is out of step")
    data.update(current)
    return _ENCODER.encode(data).encode()


def _sha256_hex(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def copy_batch(
    batch: pa.RecordBatch,
    sources: SourceShards,
    output: ShardSeries,
    allowed: frozenset[str],
    keys_file: Any,
    verifier: ThreadPoolExecutor | None,
) -> tuple[pa.RecordBatch, Counter]:
    """Copy a batch's samples; return the batch with shard/offsets/json size rewritten and its licence counts.

    Licence groups are checked for the whole batch before any of its samples is written. With a `verifier`,
    each JPEG's SHA-256 is compared with `image_sha256` (on a helper thread; any mismatch fails the subset).
    """
    groups: Counter = Counter()
    for key, group in zip(batch.column("key").to_pylist(), batch.column("license_group").to_pylist(), strict=True):
        check_licence(allowed, key, group)
        groups[group] += 1
    names = set(batch.schema.names)
    columns = {name: batch.column(name).to_pylist() for name in _NEEDED}
    metadata = {field: batch.column(col).to_pylist() for field, col in CURRENT_METADATA.items() if col in names}
    new_shard: list[str] = []
    new_offsets: dict[str, list[int]] = {ext: [] for ext in MEMBERS}
    json_sizes: list[int] = []
    checks = []
    for i, key in enumerate(columns["key"]):
        spans = sorted((columns[f"{ext}_offset"][i], columns[f"{ext}_size"][i], ext) for ext in MEMBERS)
        start, end = spans[0][0], spans[-1][0] + spans[-1][1]
        if spans[0][0] < 0 or any(a[0] + a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
            raise SubsetError(f"{key}: member offsets overlap in the catalog; re-run `workbench extract`")
        span = memoryview(sources.read(columns["shard"][i], start, end - start))
        members = {ext: span[offset - start : offset - start + size] for offset, size, ext in spans}
        members["json"] = sample_json(members["json"], {f: values[i] for f, values in metadata.items()}, key)
        if verifier is not None:
            checks.append((i, verifier.submit(_sha256_hex, members["jpg"])))
        shard, offsets = output.add(key, members)
        new_shard.append(shard)
        for ext in MEMBERS:
            new_offsets[ext].append(offsets[ext])
        json_sizes.append(len(members["json"]))
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
    replaced["json_size"] = pa.array(json_sizes, type=schema.field("json_size").type)
    for ext, values in new_offsets.items():
        replaced[f"{ext}_offset"] = pa.array(values, type=schema.field(f"{ext}_offset").type)
    arrays = [replaced.get(name, batch.column(i)) for i, name in enumerate(schema.names)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema), groups

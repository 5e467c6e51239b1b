"""Training inputs resolved into open_clip_train's `--train-data` (a `::`-joined list) and a sample count.

Inputs: a subset (`NAME` or `NAME/SPLIT`, WS/subsets/...), local shard files or brace patterns
(`/data/shards/{000000..000099}.tar`), `http(s)://` URLs (braces allowed) and `pipe:` commands (e.g.
`pipe:curl -s -L -H 'Authorization: Bearer ...' https://huggingface.co/.../{0000..0099}.tar`). The sample
count comes from `sizes.json` beside the shards (local, or fetched next to http URLs), from a subset's manifest,
or from `samples` when given; a `pipe:` input needs `samples`.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InputNotFound, UserError
from workbench.fileio import CorruptFile, file_sha256, read_json
from workbench.workspace import Workspace

SIZES = "sizes.json"
MANIFEST = "manifest.json"
REMOTE = ("http://", "https://")
PIPE = "pipe:"
SIZES_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TrainData:
    """What open_clip_train reads: `urls` (joined by `::`), `samples` per epoch, the manifests behind them."""

    urls: tuple[str, ...]
    samples: int
    shards: int
    manifests: tuple[dict, ...] = ()

    @property
    def train_data(self) -> str:
        return "::".join(self.urls)


def _expand(pattern: str) -> list[str]:
    import braceexpand

    return list(braceexpand.braceexpand(pattern))


def subset_data(workspace: Workspace, name: str) -> TrainData:
    """The shards of subset NAME (or NAME/SPLIT): every .tar listed in its sizes.json, counted from it."""
    parts = [part for part in name.strip("/").split("/") if part]
    if not parts or len(parts) > 2 or any(part in (".", "..") for part in parts):
        raise UserError(f"bad subset {name!r}: use NAME or NAME/SPLIT (a folder under {workspace.subsets})")
    folder = workspace.subsets.joinpath(*parts)
    if not folder.is_dir():
        raise InputNotFound(f"subset {name} not found ({folder})")
    try:
        sizes = read_json(folder / SIZES)
        manifest_path = folder / MANIFEST
        manifest = read_json(manifest_path)
    except FileNotFoundError as error:
        missing = Path(error.filename or "").name or "a file"
        raise InputNotFound(f"subset {name}: {missing} is missing in {folder}") from None
    except CorruptFile as error:
        raise UserError(f"subset {name}: {error}") from None
    samples = sum(int(n) for n in sizes.values())
    if samples == 0:
        raise UserError(f"subset {name} is empty (0 samples in {folder}): nothing to train on")
    shards = sorted(shard for shard, n in sizes.items() if int(n) > 0)
    missing = [shard for shard in shards if not (folder / shard).is_file()]
    if missing:
        raise InputNotFound(f"subset {name}: shard {folder / missing[0]} is missing")
    record = {
        "subset": name,
        "manifest": str(manifest_path),
        "manifest_sha256": file_sha256(manifest_path),
        "samples": samples,
        "split": manifest.get("split") if isinstance(manifest, dict) else None,
    }
    return TrainData(tuple(str(folder / shard) for shard in shards), samples, len(shards), (record,))


def _local_count(files: list[str]) -> int | None:
    """Samples in local shard files from the sizes.json beside them (None when one is not listed)."""
    total = 0
    for folder, names in _by_folder(files).items():
        sizes_path = Path(folder) / SIZES
        if not sizes_path.is_file():
            return None
        try:
            sizes = read_json(sizes_path)
        except CorruptFile as error:
            raise UserError(f"{sizes_path}: {error}") from None
        if any(name not in sizes for name in names):
            return None
        total += sum(int(sizes[name]) for name in names)
    return total


def _by_folder(files: list[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for path in files:
        grouped.setdefault(os.path.dirname(path), []).append(os.path.basename(path))
    return grouped


def _remote_count(urls: list[str]) -> int | None:
    """Samples in http(s) shards from the sizes.json next to them, fetched once per folder (None if absent)."""
    total = 0
    for folder, names in _by_folder(urls).items():
        try:
            with urllib.request.urlopen(f"{folder}/{SIZES}", timeout=SIZES_TIMEOUT_S) as response:  # noqa: S310
                sizes = json.loads(response.read(16 << 20))
        except (OSError, ValueError):
            return None
        if not isinstance(sizes, dict) or any(name not in sizes for name in names):
            return None
        total += sum(int(sizes[name]) for name in names)
    return total


def input_data(items: list[str], samples: int | None) -> TrainData:
    """Shard files, brace patterns, http(s) URLs and pipe: commands as training input."""
    urls: list[str] = []
    shards = 0
    counted: int | None = 0
    for item in items:
        item = item.strip()
        if not item:
            raise UserError("an empty training input was given")
        if item.startswith(PIPE):
            urls.append(item)
            shards += len(_expand(item))
            counted = None
            continue
        expanded = _expand(item)
        shards += len(expanded)
        if item.startswith(REMOTE):
            urls.append(item)
            if samples is None and counted is not None:
                remote = _remote_count(expanded)
                counted = None if remote is None else counted + remote
            continue
        parsed = urllib.parse.urlparse(item)
        if parsed.scheme not in ("", "file"):
            raise UserError(f"training input {item!r}: use a local path, http(s):// URL or pipe: command")
        local = [str(Path(parsed.path if parsed.scheme else path).expanduser().resolve()) for path in expanded]
        missing = [path for path in local if not Path(path).is_file()]
        if missing:
            raise InputNotFound(f"training shard {missing[0]} not found (input {item!r})")
        urls.extend(local)
        if samples is None and counted is not None:
            count = _local_count(local)
            counted = None if count is None else counted + count
    total = samples if samples is not None else counted
    if total is None:
        raise UserError("the number of training samples is unknown (no sizes.json beside the shards): give --samples N")
    if total < 1:
        raise UserError("the training input holds no samples: nothing to train on")
    return TrainData(tuple(urls), int(total), shards)

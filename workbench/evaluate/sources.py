"""Read a task's data into a list of items (image reference, label, captions), whatever its format.

Formats (`data.format` in the task file):
- `folder`: `path/CLASS_LABEL/*.jpg|png|...` (a `.txt` beside an image is its caption);
- `table`: a CSV or Parquet file with an image path column (relative to the file), a label column and an optional
  caption column (`image_column`, `label_column`, `caption_column`; defaults image, label, caption);
- `webdataset`: tar shards (`path`: a brace pattern or a list) with an image member (jpg/png/webp), `cls` (the class
  index into the task's classes, clip_benchmark's convention) and/or `txt` (the caption);
- `mubench`: μ-Bench-style Parquet: the image's bytes inline (`image`: binary or {bytes, path}), `label`, and the
  caption options (`caption_column`, default `caption`: one string or a list, every option a positive);
- `workspace-split`: the workspace's split subset WS/subsets/SUBSET/SPLIT/ (split default `test`), labels looked up
  by key in the sample mirror's ground truth (`labels`: a JSONL file, `label_field`: default `concept`).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workbench.errors import InputNotFound, UserError
from workbench.evaluate.tasks import Task

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
WDS_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class ImageRef:
    """Where one image's encoded bytes are: a whole file, a byte range of one (a tar member) or inline bytes."""

    path: str = ""
    offset: int = 0
    size: int = -1
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            return handle.read(self.size) if self.size >= 0 else handle.read()


@dataclass(frozen=True)
class TaskData:
    """The items of a task in a stable order: ids, images, labels (the data's values; None: unlabelled), captions."""

    ids: list[str]
    images: list[ImageRef]
    labels: list[str | None]
    captions: list[list[str]]
    source: str  # where the data was read from (for the result's provenance)

    def __len__(self) -> int:
        return len(self.ids)


def load_data(
    task: Task, workspace: Path | None = None, subset: str | None = None, labels: Path | None = None
) -> TaskData:
    """Read the task's items; bad or missing input is a UserError naming the file.

    `labels` replaces a workspace-split task's ground-truth file (e.g. a sample mirror outside the workspace)."""
    data = task.data
    kind = str(data["format"])
    readers = {
        "folder": _folder,
        "table": _table,
        "webdataset": _webdataset,
        "mubench": _mubench,
        "workspace-split": _workspace_split,
    }
    if kind not in readers:
        raise UserError(f"task {task.name}: unknown data format {kind!r} (choose from {', '.join(readers)})")
    if labels is not None:
        task = replace(task, data=task.data | {"labels": str(Path(labels).resolve())})
    items = readers[kind](task, workspace, subset)
    if not len(items):
        raise UserError(f"task {task.name}: no images found in {items.source}")
    return items


def _expand(task: Task, value: Any, workspace: Path | None) -> Path:
    text = str(value)
    if "{workspace}" in text:
        if workspace is None:
            raise UserError(f"task {task.name}: its data path {text} needs --workspace")
        text = text.replace("{workspace}", str(Path(workspace).expanduser().resolve()))
    path = Path(text).expanduser()
    return path if path.is_absolute() else (task.path.parent / path)


def _required_path(task: Task, workspace: Path | None, what: str) -> Path:
    if not task.data.get("path"):
        raise UserError(f"task file {task.path}: data format {task.data['format']} needs a 'path'")
    path = _expand(task, task.data["path"], workspace)
    if not path.exists():
        raise InputNotFound(f"task {task.name}: {what} {path} not found")
    return path


def _folder(task: Task, workspace: Path | None, _subset: str | None) -> TaskData:
    root = _required_path(task, workspace, "image folder")
    ids, images, labels, captions = [], [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            ids.append(f"{folder.name}/{file.name}")
            images.append(ImageRef(str(file)))
            labels.append(folder.name)
            sidecar = file.with_suffix(".txt")
            captions.append([sidecar.read_text(encoding="utf-8").strip()] if sidecar.is_file() else [])
    return TaskData(ids, images, labels, captions, str(root))


def _caption_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(v) for v in value if v is not None and str(v).strip()]


def _read_table(path: Path) -> Any:
    import polars as pl

    try:
        return pl.read_parquet(path) if path.suffix.lower() == ".parquet" else pl.read_csv(path)
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad input file
        raise UserError(f"cannot read table {path}: {' '.join(str(error).split())[:200]}") from None


def _columns(task: Task, table: Any, path: Path, image_default: str) -> tuple[str, str | None, str | None]:
    image = str(task.data.get("image_column", image_default))
    label = str(task.data.get("label_column", "label"))
    caption = str(task.data.get("caption_column", "caption"))
    if image not in table.columns:
        raise UserError(f"table {path} has no image column {image!r} (columns: {', '.join(table.columns)})")
    if "zeroshot" in task.metrics and label not in table.columns:
        raise UserError(f"table {path} has no label column {label!r} (columns: {', '.join(table.columns)})")
    return image, label if label in table.columns else None, caption if caption in table.columns else None


def _table(task: Task, workspace: Path | None, _subset: str | None) -> TaskData:
    path = _required_path(task, workspace, "table")
    table = _read_table(path)
    image_col, label_col, caption_col = _columns(task, table, path, "image")
    ids, images, labels, captions = [], [], [], []
    for row in table.iter_rows(named=True):
        file = Path(str(row[image_col])).expanduser()
        file = file if file.is_absolute() else path.parent / file
        ids.append(str(row[image_col]))
        images.append(ImageRef(str(file)))
        labels.append(None if label_col is None or row[label_col] is None else str(row[label_col]))
        captions.append(_caption_list(row[caption_col]) if caption_col else [])
    return TaskData(ids, images, labels, captions, str(path))


def _mubench(task: Task, workspace: Path | None, _subset: str | None) -> TaskData:
    path = _required_path(task, workspace, "Parquet file")
    table = _read_table(path)
    image_col, label_col, caption_col = _columns(task, table, path, "image")
    ids, images, labels, captions = [], [], [], []
    for position, row in enumerate(table.iter_rows(named=True)):
        value = row[image_col]
        data = value.get("bytes") if isinstance(value, dict) else value
        if not isinstance(data, bytes | bytearray):
            raise UserError(f"{path}: row {position}: column {image_col!r} holds no image bytes")
        name = value.get("path") if isinstance(value, dict) else None
        ids.append(str(row.get("image_id") or name or position))
        images.append(ImageRef(data=bytes(data)))
        labels.append(None if label_col is None or row[label_col] is None else str(row[label_col]))
        captions.append(_caption_list(row[caption_col]) if caption_col else [])
    return TaskData(ids, images, labels, captions, str(path))


def tar_samples(path: Path) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """The samples of a WebDataset shard in order: (key, {extension: (data offset, size)})."""
    samples: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                key, _, ext = base.partition(".")
                prefix = member.name[: len(member.name) - len(base)]
                samples.setdefault(prefix + key, {})[ext.lower()] = (member.offset_data, member.size)
    except (tarfile.TarError, OSError) as error:
        raise UserError(f"cannot read shard {path}: {error}") from None
    return list(samples.items())


def _member_text(path: Path, location: tuple[int, int]) -> str:
    return ImageRef(str(path), *location).read().decode("utf-8", "replace").strip()


def _shard_items(shards: list[Path], cls_labels: list[str] | None) -> TaskData:
    ids, images, labels, captions = [], [], [], []
    for shard in shards:
        for key, members in tar_samples(shard):
            image = next((members[k] for k in WDS_IMAGE_KEYS if k in members), None)
            if image is None:
                continue
            label = None
            if "cls" in members and cls_labels is not None:
                index = int(_member_text(shard, members["cls"]))
                label = cls_labels[index] if 0 <= index < len(cls_labels) else None
            ids.append(key)
            images.append(ImageRef(str(shard), *image))
            labels.append(label)
            captions.append(_caption_list(_member_text(shard, members["txt"])) if "txt" in members else [])
    return TaskData(ids, images, labels, captions, ", ".join(str(s) for s in shards[:3]))


def _webdataset(task: Task, workspace: Path | None, _subset: str | None) -> TaskData:
    from braceexpand import braceexpand

    spec = task.data.get("path")
    if not spec:
        raise UserError(f"task file {task.path}: data format webdataset needs a 'path' (shards or brace pattern)")
    patterns = spec if isinstance(spec, list) else [spec]
    shards = [_expand(task, name, workspace) for pattern in patterns for name in braceexpand(str(pattern))]
    missing = [s for s in shards if not s.is_file()]
    if missing:
        raise InputNotFound(f"task {task.name}: shard {missing[0]} not found")
    return _shard_items(shards, [c.label for c in task.classes] if task.classes else None)


def split_folder(workspace: Path, subset: str | None, split: str) -> Path:
    """WS/subsets/SUBSET/SPLIT; without SUBSET the only subset that has that split."""
    root = workspace / "subsets"
    if subset:
        folder = root / subset / split
        if not folder.is_dir():
            raise InputNotFound(
                f"split {split!r} of subset {subset!r} not found ({folder}): run workbench subset --split"
            )
        return folder
    found = sorted(p for p in root.glob(f"*/{split}") if p.is_dir()) if root.is_dir() else []
    if not found:
        raise InputNotFound(
            f"no subset of workspace {workspace} has a {split!r} split: make one with workbench subset --split"
        )
    if len(found) > 1:
        names = ", ".join(p.parent.name for p in found)
        raise UserError(f"several subsets have a {split!r} split ({names}): choose one with --subset")
    return found[0]


def ground_truth_labels(path: Path, field: str) -> dict[str, str]:
    """key (PMCID_FIGUREID_GRAPHICINDEX, as extraction names samples) -> the ground truth's `field`."""
    if not path.is_file():
        raise InputNotFound(f"ground truth {path} not found (the sample mirror's ground_truth.jsonl)")
    labels = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                key = f"{row['pmcid']}_{row['figure_id']}_{row.get('graphic_index', 0)}"
                if row.get(field) is not None:
                    labels[key] = str(row[field])
    return labels


def _workspace_split(task: Task, workspace: Path | None, subset: str | None) -> TaskData:
    if workspace is None:
        raise UserError(f"task {task.name} evaluates a workspace split: give --workspace")
    folder = split_folder(workspace, subset or task.data.get("subset"), str(task.data.get("split", "test")))
    shards = sorted(folder.glob("*.tar"))
    if not shards:
        raise UserError(f"{folder} holds no shards: the split is empty")
    items = _shard_items(shards, None)
    if task.data.get("labels"):
        truth = ground_truth_labels(
            _expand(task, task.data["labels"], workspace), str(task.data.get("label_field", "concept"))
        )
        items.labels[:] = [truth.get(Path(key).name) for key in items.ids]
    return TaskData(items.ids, items.images, items.labels, items.captions, str(folder))


def decode_image(ref: ImageRef, draft: int | None = None) -> Any:
    """The RGB PIL image of a reference (raises on undecodable bytes)."""
    from PIL import Image

    with Image.open(io.BytesIO(ref.read())) as image:
        if draft:
            image.draft("RGB", (draft, draft))
        return image.convert("RGB")

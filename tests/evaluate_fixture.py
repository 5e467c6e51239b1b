"""Small evaluation fixtures: a randomly initialised tiny open_clip model saved to disk (config JSON + checkpoint),
and tasks in every data format built from generated images (a colour family per class, captions naming them)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CLASSES = ("red", "green", "blue", "yellow", "cyan", "magenta")
COLOURS = {
    "red": (200, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 200),
    "yellow": (200, 200, 30),
    "cyan": (30, 200, 200),
    "magenta": (200, 30, 200),
}


def tiny_model(folder: Path, seed: int = 0, name: str = "tiny-eval") -> str:
    """Save a random tiny CLIP (config `name`.json + checkpoint) and return its `open_clip:` spec."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{name}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(str(config))
    torch.manual_seed(seed)
    model = open_clip.create_model(name)
    checkpoint = folder / f"{name}-seed{seed}.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    return f"open_clip:{config}:{checkpoint}"


def image_bytes(label: str, index: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(index)
    base = np.array(COLOURS[label], np.float64)
    pixels = np.clip(base + rng.normal(0, 25, (40, 48, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt)
    return out.getvalue()


def items(per_class: int = 4) -> list[tuple[str, int, bytes, str]]:
    """(label, class index, jpeg bytes, caption) for every generated image."""
    return [
        (label, c, image_bytes(label, 100 * c + i), f"a {label} square number {i}")
        for c, label in enumerate(CLASSES)
        for i in range(per_class)
    ]


def write_task(path: Path, data: dict, metrics: tuple[str, ...] = ("zeroshot", "retrieval"), **extra) -> Path:
    classes = [{"label": label, "name": label, "prompts": [f"a {label} image"]} for label in CLASSES]
    task = {
        "name": path.stem,
        "version": "1",
        "metrics": list(metrics),
        "data": data,
        "templates": ["a photo of {c}.", "{c}"],
        "classes": classes,
    } | extra
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path


def folder_task(root: Path, per_class: int = 4, corrupt: int = 0) -> Path:
    """Task `folder-task.yaml` over root/images/CLASS/*.jpg (+ `corrupt` undecodable files) with .txt captions."""
    images = root / "images"
    for n, (label, _, data, caption) in enumerate(items(per_class)):
        (images / label).mkdir(parents=True, exist_ok=True)
        (images / label / f"{n:03d}.jpg").write_bytes(data)
        (images / label / f"{n:03d}.txt").write_text(caption)
    for n in range(corrupt):
        (images / CLASSES[0] / f"broken{n}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return write_task(root / "folder-task.yaml", {"format": "folder", "path": "images"})


def table_task(root: Path, per_class: int = 4, suffix: str = ".csv") -> Path:
    """Task over a CSV/Parquet table of image paths, labels and captions."""
    import polars as pl

    files = root / "table-images"
    files.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, (label, _, data, caption) in enumerate(items(per_class)):
        (files / f"{n:03d}.jpg").write_bytes(data)
        rows.append({"image": f"table-images/{n:03d}.jpg", "label": label, "caption": caption})
    table = pl.DataFrame(rows)
    path = root / f"table{suffix}"
    table.write_parquet(path) if suffix == ".parquet" else table.write_csv(path)
    return write_task(root / f"table-task{suffix.replace('.', '-')}.yaml", {"format": "table", "path": path.name})


def webdataset_task(root: Path, per_class: int = 4, shards: int = 2) -> Path:
    """Task over WebDataset shards with jpg, cls (class index) and txt: clip_benchmark's convention."""
    import tarfile

    all_items = items(per_class)
    root.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        with tarfile.open(root / f"wds-{shard:06d}.tar", "w") as tar:
            for n, (_, index, data, caption) in enumerate(all_items):
                if n % shards != shard:
                    continue
                for ext, payload in (("jpg", data), ("cls", str(index).encode()), ("txt", caption.encode())):
                    info = tarfile.TarInfo(f"s{n:05d}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    pattern = f"wds-{{000000..{shards - 1:06d}}}.tar"
    return write_task(root / "wds-task.yaml", {"format": "webdataset", "path": pattern})


def mubench_task(root: Path, per_class: int = 4) -> Path:
    """μ-Bench-style Parquet: image bytes inline ({bytes, path}), label, caption options (a list)."""
    import polars as pl

    rows = [
        {"image": {"bytes": data, "path": f"{n}.jpg"}, "label": label, "caption": [caption, f"{label} again {n}"]}
        for n, (label, _, data, caption) in enumerate(items(per_class))
    ]
    root.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_parquet(root / "mubench.parquet")
    return write_task(root / "mubench-task.yaml", {"format": "mubench", "path": "mubench.parquet"})

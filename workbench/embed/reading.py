"""Read samples by their catalog offsets and decode + preprocess them on DataLoader workers, batch by batch in order.

Batches never cross a source shard, so a shard's vectors come from the same batches whether the run was whole,
interrupted or incremental (identical bytes: a model's output for a row may depend on its batch's size).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from workbench.ustar import MemberLocation, read_member

Image.MAX_IMAGE_PIXELS = None  # extraction already bounded the images; the catalog's are trusted


@dataclass(frozen=True)
class Sample:
    """Where one sample's image and caption lie."""

    key: str
    shard: str  # the tar file's absolute path
    jpg_offset: int
    jpg_size: int
    txt_offset: int
    txt_size: int


@dataclass(frozen=True)
class ShardWork:
    """The samples of one source shard still to embed, in key order."""

    name: str  # NNNNNN: the output's file prefix
    samples: tuple[Sample, ...]


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


class SampleDataset:
    """Map-style dataset: index -> (transformed image, caption)."""

    def __init__(
        self, samples: list[Sample], transform: Callable[[Any], Any], captions: bool, decode_size: int
    ) -> None:
        self.samples, self.transform, self.captions = samples, transform, captions
        self.decode_size = decode_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        sample = self.samples[index]
        data = read_member(sample.shard, MemberLocation(sample.jpg_offset, sample.jpg_size))
        with Image.open(io.BytesIO(data)) as image:
            # JPEG: decode at 1/2, 1/4 or 1/8 scale in the DCT domain while both sides stay >= the model's input
            image.draft("RGB", (self.decode_size, self.decode_size))
            pixels = self.transform(image.convert("RGB"))
        caption = ""
        if self.captions and sample.txt_size:
            location = MemberLocation(sample.txt_offset, sample.txt_size)
            caption = read_member(sample.shard, location).decode("utf-8", "replace")
        return pixels, caption


def close_inherited_locks(folder: str, _worker_id: int = 0) -> None:
    """In a forked DataLoader worker: close the copies of the parent's lock files (under `folder`), so a lock
    dies with the process that took it, even when that process is killed and its workers linger a moment."""
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith(folder + os.sep):
                os.close(int(name))
        except OSError:
            continue


def _collate(tokenize: Callable[[list[str]], Any] | None) -> Callable[[list[tuple[Any, str]]], tuple[Any, Any]]:
    return lambda items: _stack(items, tokenize)


def _stack(items: list[tuple[Any, str]], tokenize: Callable[[list[str]], Any] | None) -> tuple[Any, Any]:
    import torch

    images = torch.stack([pixels for pixels, _ in items])
    tokens = tokenize([caption for _, caption in items]) if tokenize is not None else None
    return images, tokens


def iter_batches(
    work: list[ShardWork],
    transform: Callable[[Any], Any],
    tokenize: Callable[[list[str]], Any] | None,
    batch_size: int,
    num_workers: int,
    decode_size: int,
    pin_memory: bool = False,
    locks: str | None = None,
) -> Iterator[tuple[int, Any, Any]]:
    """Yield (index into `work`, images, tokens) for every batch, in order; workers decode ahead of the model."""
    from torch.utils.data import DataLoader

    samples: list[Sample] = []
    batches: list[list[int]] = []
    owner: list[int] = []
    for position, shard in enumerate(work):
        start = len(samples)
        samples += shard.samples
        for first in range(start, len(samples), batch_size):
            batches.append(list(range(first, min(first + batch_size, len(samples)))))
            owner.append(position)
    if not batches:
        return
    loader = DataLoader(
        SampleDataset(samples, transform, tokenize is not None, decode_size),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=_collate(tokenize),
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
        worker_init_fn=partial(close_inherited_locks, locks) if locks and num_workers else None,
    )
    for position, (images, tokens) in zip(owner, loader, strict=True):
        yield position, images, tokens


def resolve_shard(root: Path, shard: str) -> str:
    """The absolute path of a catalog `shard` value (relative to the workspace or subset folder)."""
    path = Path(shard)
    return str(path if path.is_absolute() else root / path)

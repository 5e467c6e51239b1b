"""The encoding loop: batches in order from the DataLoader, each shard written as soon as its last batch is encoded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from workbench.embed.reading import ShardWork, iter_batches
from workbench.embed.store import write_shard


def encode_shards(
    embedder: Any,
    pending: list[ShardWork],
    folder: Path,
    batch_size: int,
    num_workers: int,
    device: str = "cpu",
    progress: bool = True,
    locks: Path | None = None,
) -> int:
    """Embed the shards of `pending` in order; return the rows written. Decoding workers close lock files under
    `locks` that they inherited."""
    towers: dict[str, list[np.ndarray]] = {tower: [] for tower in embedder.towers}
    current, shard_started, rows = 0, time.perf_counter(), 0
    bar = tqdm(total=sum(len(w.samples) for w in pending), unit="img", desc="embed", disable=not progress)
    batches = iter_batches(
        pending,
        embedder.transform,
        embedder.tokenize,
        batch_size,
        num_workers,
        embedder.decode_size,
        pin_memory=device == "cuda",
        locks=str(locks) if locks else None,
    )
    try:
        for position, images, tokens in batches:
            if position != current:
                rows += _finish(folder, pending[current], towers, shard_started)
                current, shard_started = position, time.perf_counter()
            towers["image"].append(embedder.encode_images(images))
            if "text" in towers:
                towers["text"].append(embedder.encode_texts(tokens))
            bar.update(len(images))
        if pending:
            rows += _finish(folder, pending[current], towers, shard_started)
    finally:
        bar.close()
    return rows


def _finish(folder: Path, work: ShardWork, towers: dict[str, list[np.ndarray]], started: float) -> int:
    vectors = {tower: np.concatenate(blocks).astype(np.float16) for tower, blocks in towers.items()}
    write_shard(folder, work.name, [s.key for s in work.samples], vectors, time.perf_counter() - started)
    for blocks in towers.values():
        blocks.clear()
    return len(work.samples)

"""Embed on Dask: each task embeds whole source shards in a worker process (models load once per worker).

The same scheme as extraction (`workbench.extract.execution`): a LocalCluster of single-threaded worker processes
(`--workers N`) or a running scheduler (`--scheduler ADDR`, workers seeing the workspace at the same path). A shard
is batched exactly as in one process, so its files are the same whichever way it was computed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from workbench.embed.encode import encode_shards
from workbench.embed.reading import ShardWork
from workbench.extract.execution import _dask_client

_LOADED: dict[tuple[str, str], Any] = {}  # per worker process: (spec, device) -> Embedder


@dataclass(frozen=True)
class ShardJob:
    spec: str  # canonical spec text (absolute paths)
    device: str
    batch_size: int
    folder: str
    work: ShardWork


def embed_shard(job: ShardJob) -> int:
    """Embed one shard in this process (decoding in-line: the cluster's processes are the parallelism)."""
    import torch

    from workbench.embed.models import load_embedder
    from workbench.embed.spec import parse_model_spec

    key = (job.spec, job.device)
    if key not in _LOADED:
        _LOADED[key] = load_embedder(parse_model_spec(job.spec), job.device)
    if job.device == "cpu":
        torch.set_num_threads(1)
    return encode_shards(_LOADED[key], [job.work], Path(job.folder), job.batch_size, 0, job.device, False)


def run_on_dask(jobs: list[ShardJob], workers: int | None, scheduler: str | None, progress: bool) -> int:
    """Run every job; return the rows written. A failed shard raises after the others finished (re-run resumes)."""
    from distributed import Client, LocalCluster, as_completed

    rows, failure = 0, None
    bar = tqdm(total=sum(len(job.work.samples) for job in jobs), unit="img", desc="embed", disable=not progress)
    with _dask_client(Client, LocalCluster, workers, scheduler) as client:
        futures = [
            client.submit(embed_shard, job, key=f"embed-{job.work.name}-{uuid.uuid4().hex[:8]}", pure=False)
            for job in jobs
        ]
        for future in as_completed(futures):
            try:
                done = future.result()
            except Exception as error:  # keep the others going; report the first failure at the end
                failure = failure or error
                continue
            rows += done
            bar.update(done)
    bar.close()
    if failure is not None:
        raise failure
    return rows

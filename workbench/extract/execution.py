"""Run work units: in this process, or on Dask (a LocalCluster, or a running scheduler by address)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

from workbench.errors import UserError
from workbench.extract.units import UnitJob, run_unit

LOCAL_MALLOC_TRIM_BYTES = 64 * 2**20
MIN_UNITS_IN_FLIGHT = 256  # units submitted to Dask ahead of completion (more with many workers)

Outcome = tuple[UnitJob, dict[str, Any] | None, BaseException | None]


def execute(
    jobs: Sequence[UnitJob], workers: int | None, scheduler: str | None, progress: bool = True
) -> Iterator[Outcome]:
    """Run `run_unit` for every job and yield (job, stats, error) as units finish.

    In-process when `workers == 0` and no scheduler is given; otherwise on Dask: the scheduler at
    `scheduler`, or a LocalCluster of `workers` single-threaded processes (one per core by default).
    """
    if not jobs:
        return
    bar = tqdm(total=len(jobs), unit="shard", desc="extract", disable=not progress)
    try:
        if scheduler is None and workers == 0:
            for job in jobs:
                try:
                    stats, error = run_unit(job), None
                except Exception as failure:
                    stats, error = None, failure
                bar.update()
                yield job, stats, error
            return
        yield from _execute_on_dask(jobs, workers, scheduler, bar)
    finally:
        bar.close()


def _execute_on_dask(
    jobs: Sequence[UnitJob], workers: int | None, scheduler: str | None, bar: tqdm
) -> Iterator[Outcome]:
    from distributed import Client, LocalCluster, as_completed

    with _dask_client(Client, LocalCluster, workers, scheduler) as client:
        # Keep a bounded number of units submitted, so the scheduler never holds every unit's package list.
        window = max(4 * sum(client.nthreads().values()), MIN_UNITS_IN_FLIGHT)
        waiting, running, finished = iter(jobs), {}, as_completed()

        def submit_next() -> None:
            job = next(waiting, None)
            if job is not None:
                key = f"extract-unit-{job.unit.name}-{uuid.uuid4().hex[:8]}"
                future = client.submit(run_unit, job, key=key, pure=False, retries=0)
                running[future] = job
                finished.add(future)

        for _ in range(window):
            submit_next()
        for future in finished:
            job = running.pop(future)
            try:
                stats, error = future.result(), None
            except Exception as failure:
                stats, error = None, failure
            future.release()
            submit_next()
            bar.update()
            yield job, stats, error


@contextmanager
def _dask_client(client_class: type, cluster_class: type, workers: int | None, scheduler: str | None) -> Iterator[Any]:
    if scheduler is not None:
        try:
            client = client_class(scheduler, timeout="20s")
        except (OSError, TimeoutError) as error:
            raise UserError(f"cannot connect to the Dask scheduler at {scheduler!r}: {error}") from error
        with client:
            yield client
        return
    import dask

    count = workers or os.cpu_count() or 1
    # Dask makes glibc return freed memory to the OS at 64 KiB; decoding images then page-faults all the time.
    # Keep up to LOCAL_MALLOC_TRIM_BYTES per worker instead (measured: 5x fewer page faults, half the system time).
    keep_freed = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": LOCAL_MALLOC_TRIM_BYTES}
    with (
        dask.config.set(keep_freed),
        cluster_class(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        client_class(cluster) as client,
    ):
        yield client

"""`acquire(config)`: file list -> selection -> plan against `downloads` -> parallel fetch -> summary.

Resumable and idempotent: finished packages are recorded as they complete, a re-run fetches only what is
pending (new, changed, interrupted), and partial files never enter WS/mirror.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from tqdm.auto import tqdm

from workbench.acquire.downloader import (
    DEFAULT_SOURCE,
    DownloadConfig,
    HttpSource,
    PackageFetcher,
    clear_scratch,
    open_source,
)
from workbench.acquire.filelist import FILE_LIST_NAME, fetch_file_list, is_url, read_file_list
from workbench.acquire.http import new_session, thread_sessions
from workbench.acquire.oaservice import DEFAULT_OA_SERVICE, OAService
from workbench.acquire.selection import Selection, missing_pmcids, parse_since, select
from workbench.acquire.state import DownloadState, PackageOutcome, PlanCounts
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

log = logging.getLogger(__name__)


class AcquireStopped(RuntimeError):
    """Raised by the `stop_on_failure` policy; everything finished so far is recorded."""


def continue_on_failure(outcome: PackageOutcome) -> None:
    """Default policy: a failed package is recorded (status 'failed', reason, error) and the run goes on."""


def stop_on_failure(outcome: PackageOutcome) -> None:
    """Strict policy: stop the run at the first package that failed for good."""
    raise AcquireStopped(f"{outcome.pmcid} failed ({outcome.reason}): {outcome.error}")


@dataclass(frozen=True)
class AcquireConfig:
    """One acquisition run. `source` is an http(s) base laid out like PMC's FTP tree or a local folder;
    `file_list` overrides where oa_file_list.csv is read from (default: SOURCE/oa_file_list.csv)."""

    workspace: Path
    source: str = DEFAULT_SOURCE
    file_list: str | None = None
    selection: Selection = field(default_factory=Selection)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    oa_service: str | None = DEFAULT_OA_SERVICE
    retry_failed: bool = False
    progress: bool = True
    on_failure: Callable[[PackageOutcome], None] = continue_on_failure

    @classmethod
    def from_parameters(
        cls,
        workspace: str | Path,
        source: str = DEFAULT_SOURCE,
        license_groups: list[str] | tuple[str, ...] | None = None,
        since: str | None = None,
        limit: int | None = None,
        concurrency: int = 4,
        oa_service: str | None = DEFAULT_OA_SERVICE,
    ) -> AcquireConfig:
        """Build a config from plain notebook parameters (empty values mean no filter)."""
        selection = Selection(
            license_groups=tuple(license_groups) if license_groups else None,
            since=parse_since(since) if since else None,
            limit=limit,
        )
        download = DownloadConfig(concurrency=concurrency)
        return cls(Path(workspace), source, selection=selection, download=download, oa_service=oa_service or None)

    @property
    def file_list_source(self) -> str:
        if self.file_list:
            return self.file_list
        if is_url(self.source):
            return self.source.rstrip("/") + "/" + FILE_LIST_NAME
        return str(Path(self.source.removeprefix("file://")).expanduser() / FILE_LIST_NAME)


@dataclass(frozen=True)
class AcquireSummary:
    """What a run did and where the selection stands. `exit_code`: 0 all done, 1 something needs a look."""

    selected: int
    plan: PlanCounts
    downloaded: int
    failed_now: int
    bytes: int
    seconds: float
    status: dict[str, int]
    failures: pl.DataFrame
    unknown_pmcids: tuple[str, ...] = ()

    @property
    def done(self) -> int:
        return self.status.get("done", 0)

    @property
    def failed(self) -> int:
        return self.status.get("failed", 0)

    @property
    def failures_by_reason(self) -> dict[str, int]:
        if self.failures.is_empty():
            return {}
        counts = self.failures.group_by("reason").len().sort("len", descending=True)
        return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))

    @property
    def exit_code(self) -> int:
        incomplete = self.selected - self.done
        return 0 if incomplete == 0 and not self.unknown_pmcids else 1

    def describe(self) -> str:
        rate = self.bytes / self.seconds / 1e6 if self.seconds else 0.0
        pending = self.selected - self.done - self.failed
        lines = [
            f"selected {self.selected} articles: {self.done} done, {self.failed} failed"
            + (f", {pending} pending" if pending else ""),
            f"this run: {self.downloaded} downloaded ({self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s, "
            f"{rate:.1f} MB/s), {self.failed_now} failed; {self.plan.new} new, {self.plan.changed} changed "
            f"({self.plan.stale} now stale for extraction), {self.plan.retried} retried, "
            f"{self.plan.missing_on_disk} missing on disk",
        ]
        lines += [f"failed ({reason}): {count}" for reason, count in self.failures_by_reason.items()]
        for row in self.failures.head(5).iter_rows(named=True):
            lines.append(f"  {row['pmcid']}: {row['error']}")
        if self.unknown_pmcids:
            shown = ", ".join(self.unknown_pmcids[:10]) + (" ..." if len(self.unknown_pmcids) > 10 else "")
            lines.append(f"not in the file list ({len(self.unknown_pmcids)}): {shown}")
        return "\n".join(lines)


def load_file_list(config: AcquireConfig, workspace: Workspace) -> pl.DataFrame:
    """The run's file list; a remote one is kept under WS/cache/ so what was selected can be inspected later."""
    source = config.file_list_source
    if is_url(source):
        retry = config.download.retry
        path = fetch_file_list(source, workspace.cache / FILE_LIST_NAME, new_session(1), config.download.timeout, retry)
        return read_file_list(path)
    return read_file_list(source)


def acquire(config: AcquireConfig, file_list: pl.DataFrame | None = None) -> AcquireSummary:
    """Bring the selected packages into WS/mirror and record each in `downloads` (see module docstring).

    `file_list` skips reading the file list again when the caller already has it (e.g. a notebook).
    """
    started = time.monotonic()
    workspace = Workspace.at(config.workspace).ensure()
    source = open_source(config.source, config.download)
    if file_list is None:
        file_list = load_file_list(config, workspace)
    selected = select(file_list, config.selection)
    busy = f"another `workbench acquire` is running on {workspace.root}; wait for it or stop it"
    with exclusive_lock(workspace.locks / "acquire.lock", busy), DownloadState(workspace) as state:
        clear_scratch(workspace.tmp / "acquire")
        state.store_file_list(file_list)
        plan = state.plan(selected, config.retry_failed)
        _remove_replaced(state, workspace)
        work = state.pending()
        fetcher = PackageFetcher(
            source=source,
            mirror=workspace.mirror,
            scratch=workspace.tmp / "acquire",
            retry=config.download.retry,
            oa_service=_oa_service(config, source),
            bounds=config.download.bounds,
        )
        totals = _Totals()
        with tqdm(total=len(work), unit="pkg", desc="acquire", disable=not config.progress) as bar:
            for outcomes in _run_parallel(fetcher, work, config.download.concurrency):
                state.record(outcomes)
                totals.add(outcomes)
                bar.update(len(outcomes))
                bar.set_postfix(failed=totals.failed, MB=f"{totals.bytes / 1e6:.1f}", refresh=False)
                for outcome in outcomes:
                    if not outcome.ok:
                        config.on_failure(outcome)
        _remove_replaced(state, workspace)
        return AcquireSummary(
            selected=selected.height,
            plan=plan,
            downloaded=totals.downloaded,
            failed_now=totals.failed,
            bytes=totals.bytes,
            seconds=time.monotonic() - started,
            status=state.selection_status(),
            failures=state.selection_failures(),
            unknown_pmcids=tuple(missing_pmcids(file_list, config.selection)),
        )


@dataclass
class _Totals:
    downloaded: int = 0
    failed: int = 0
    bytes: int = 0

    def add(self, outcomes: list[PackageOutcome]) -> None:
        for outcome in outcomes:
            if outcome.ok:
                self.downloaded += 1
                self.bytes += outcome.bytes or 0
            else:
                self.failed += 1


def _oa_service(config: AcquireConfig, source: object) -> OAService | None:
    if not config.oa_service:
        return None
    if not isinstance(source, HttpSource) and config.oa_service == DEFAULT_OA_SERVICE:
        return None  # NCBI's service points into NCBI's tree, never into a local mirror: don't ask it offline
    sessions = source.session if isinstance(source, HttpSource) else thread_sessions(1)
    return OAService(config.oa_service, sessions, config.download.timeout)


def _run_parallel(
    fetcher: PackageFetcher, work: list[tuple[str, str]], concurrency: int
) -> Iterator[list[PackageOutcome]]:
    """Yield batches of finished packages as they complete; at most `concurrency` requests at a time."""
    jobs = iter(work)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="acquire")
    in_flight: set[Future[PackageOutcome]] = set()
    try:
        for pmcid, file in jobs:
            in_flight.add(pool.submit(fetcher, pmcid, file))
            if len(in_flight) >= concurrency:
                break
        while in_flight:
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for pmcid, file in jobs:
                in_flight.add(pool.submit(fetcher, pmcid, file))
                if len(in_flight) >= concurrency:
                    break
            yield [future.result() for future in finished]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _remove_replaced(state: DownloadState, workspace: Workspace) -> None:
    """Delete earlier versions of packages whose newer version (at a different path) is in the mirror."""
    for file in state.replaced_files():
        (workspace.mirror / file).unlink(missing_ok=True)

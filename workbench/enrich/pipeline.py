"""`enrich(config)`: fetch PubMed records for the workspace's PMIDs (cache first) into the `pubmed` table."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from workbench.enrich.cache import CachedBatch, ResponseCache
from workbench.enrich.eutils import (
    DEFAULT_EUTILS_BASE,
    DEFAULT_TIMEOUT_S,
    RATE_WITH_KEY,
    RATE_WITHOUT_KEY,
    TOOL_NAME,
    EutilsClient,
    EutilsError,
    RateLimiter,
)
from workbench.enrich.pmids import known_pmids, normalize_pmids
from workbench.enrich.pubmed import parse_pubmed_xml
from workbench.enrich.store import FOUND, MISSING, PubmedStore
from workbench.errors import InputNotFound, UserError
from workbench.retry import RetryPolicy
from workbench.workspace import Workspace

MAX_BATCH_SIZE = 200
FLUSH_ROWS = 2_000  # rows kept in memory before they are upserted

log = logging.getLogger(__name__)

#: Called with the PMIDs of a batch that could not be fetched or parsed, and the error.
BatchErrorHandler = Callable[[Sequence[str], Exception], None]


def raise_batch_error(pmids: Sequence[str], error: Exception) -> None:
    """Default policy: stop the run (rows of earlier batches are already saved; a re-run resumes)."""
    raise error


def skip_batch(pmids: Sequence[str], error: Exception) -> None:
    """Lenient policy: log and go on; the batch's PMIDs get no row, so the next run tries them again."""
    log.warning("skipped %d PMIDs (%s...): %s", len(pmids), ",".join(pmids[:3]), error)


@dataclass(frozen=True)
class EnrichConfig:
    """What to enrich and how politely to ask NCBI."""

    workspace: Path | str
    pmids: tuple[str, ...] = ()  # asked for explicitly, in addition to the workspace's own when include_known
    include_known: bool = True  # also enrich known_pmids(workspace)
    eutils_base: str = DEFAULT_EUTILS_BASE
    api_key: str | None = None
    email: str | None = None
    tool: str = TOOL_NAME
    batch_size: int = MAX_BATCH_SIZE
    requests_per_second: float | None = None  # None: NCBI's limit, 3 without an API key, 10 with one
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = DEFAULT_TIMEOUT_S  # per request (connect and read)
    reparse: bool = False  # rebuild rows of PMIDs already in the table from the cached responses
    refetch_missing: bool = False  # ask NCBI again for PMIDs recorded as missing, bypassing their cached answer
    on_batch_error: BatchErrorHandler = raise_batch_error
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise UserError(f"timeout_s must be positive, got {self.timeout_s}")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise UserError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {self.batch_size}")
        limit = RATE_WITH_KEY if self.api_key else RATE_WITHOUT_KEY
        rate = self.requests_per_second
        if rate is not None and not 0 < rate <= limit:
            key = "with" if self.api_key else "without"
            raise UserError(f"requests_per_second must be in (0, {limit:g}] {key} an API key, got {rate}")

    @property
    def rate(self) -> float:
        return self.requests_per_second or (RATE_WITH_KEY if self.api_key else RATE_WITHOUT_KEY)


@dataclass(frozen=True)
class EnrichSummary:
    """What a run did. PMID counts refer to this run's PMIDs; `table_*` to the whole table afterwards."""

    requested: int  # distinct PMIDs asked for
    already_done: int  # had a row already, left alone
    from_cache: int  # rows built from stored responses, no request
    fetched: int  # PMIDs in batches fetched from E-utilities
    found: int  # rows written with a PubMed record
    missing: int  # rows written as missing (asked for, absent from the answer)
    failed: int  # PMIDs of batches the error handler skipped
    requests: int  # HTTP requests sent, retries included
    table_found: int
    table_missing: int
    parquet: Path | None
    seconds: float

    def lines(self) -> list[str]:
        return [
            f"PMIDs: {self.requested} requested, {self.already_done} already enriched, "
            f"{self.from_cache} from cache, {self.fetched} fetched ({self.requests} requests)",
            f"rows written: {self.found} found, {self.missing} missing; {self.failed} failed",
            f"table pubmed: {self.table_found} found, {self.table_missing} missing; parquet: {self.parquet}",
            f"time: {self.seconds:.1f} s",
        ]


@dataclass
class _Tally:
    from_cache: int = 0
    fetched: int = 0
    found: int = 0
    missing: int = 0
    failed: int = 0


def enrich(config: EnrichConfig) -> EnrichSummary:
    """Fetch (or read from cache) PubMed records of the configured PMIDs and upsert them into `pubmed`."""
    started = time.monotonic()
    workspace = Workspace.at(config.workspace)
    if not workspace.root.is_dir():
        raise InputNotFound(f"workspace {workspace.root} does not exist")
    requested = normalize_pmids(config.pmids, source="the PMID list")
    if config.include_known:
        requested = normalize_pmids([*requested, *known_pmids(workspace)], source="the PMID list")
    store = PubmedStore(workspace)
    statuses = store.statuses()
    refetch = {pmid for pmid, status in statuses.items() if status == MISSING} if config.refetch_missing else set()
    done = set() if config.reparse else (statuses.keys() - refetch) & set(requested)
    todo = [pmid for pmid in requested if pmid not in done]
    cache = ResponseCache(workspace.cache / "eutils" / "efetch-pubmed")
    index = {pmid: batch for pmid, batch in cache.index().items() if pmid not in refetch} if todo else {}
    client = EutilsClient(
        config.eutils_base,
        api_key=config.api_key,
        email=config.email,
        tool=config.tool,
        limiter=RateLimiter(config.rate),
        retry=config.retry,
        timeout_s=config.timeout_s,
    )
    tally = _Tally()
    pending: list[dict[str, Any]] = []
    written = 0
    try:
        with tqdm(total=len(todo), unit="pmid", desc="enrich", disable=not config.show_progress) as progress:
            for batch_pmids, cached in _plan(todo, index, config.batch_size):
                try:
                    rows = _rows_for(batch_pmids, cached, cache, client, workspace, tally)
                except Exception as error:  # the configured policy decides: raise, skip, ...
                    config.on_batch_error(batch_pmids, error)
                    tally.failed += len(batch_pmids)
                    rows = []
                pending += rows
                written += len(rows)
                if len(pending) >= FLUSH_ROWS:
                    store.upsert(pending)
                    pending = []
                progress.update(len(batch_pmids))
    finally:  # keep what was parsed, even when the run stops early
        client.close()
        store.upsert(pending)
        if written or not store.parquet.is_file():
            store.export_parquet()
    counts = store.counts()
    return EnrichSummary(
        requested=len(requested),
        already_done=len(done),
        from_cache=tally.from_cache,
        fetched=tally.fetched,
        found=tally.found,
        missing=tally.missing,
        failed=tally.failed,
        requests=client.requests_sent,
        table_found=counts.get(FOUND, 0),
        table_missing=counts.get(MISSING, 0),
        parquet=store.parquet if store.parquet.is_file() else None,
        seconds=time.monotonic() - started,
    )


def _plan(
    todo: Sequence[str], index: dict[str, CachedBatch], batch_size: int
) -> Iterator[tuple[list[str], CachedBatch | None]]:
    """Stored batches first (each read once), then the uncached PMIDs in sorted batches of `batch_size`."""
    by_batch: dict[str, tuple[CachedBatch, list[str]]] = {}
    uncached = []
    for pmid in todo:
        cached = index.get(pmid)
        if cached is None:
            uncached.append(pmid)
        else:
            by_batch.setdefault(cached.key, (cached, []))[1].append(pmid)
    for cached, pmids in by_batch.values():
        yield pmids, cached
    for start in range(0, len(uncached), batch_size):
        yield uncached[start : start + batch_size], None


def _rows_for(
    pmids: list[str],
    cached: CachedBatch | None,
    cache: ResponseCache,
    client: EutilsClient,
    workspace: Workspace,
    tally: _Tally,
) -> list[dict[str, Any]]:
    """Rows for `pmids`: their records from the stored or freshly fetched answer, the absent ones as missing."""
    if cached is None:
        body = client.efetch_pubmed(pmids)
        records = _parse(body, f"efetch answer for PMIDs {pmids[0]}..{pmids[-1]}")
        cached = cache.store(pmids, body)  # only an answer that parsed is kept
        tally.fetched += len(pmids)
    else:
        records = _parse(cached.path.read_bytes(), str(cached.path))
        tally.from_cache += len(pmids)
    by_pmid = {record["pmid"]: record for record in records}
    provenance = {
        "cache_file": cached.path.relative_to(workspace.root).as_posix(),
        "fetched_at": cached.fetched_at.astimezone(UTC).replace(tzinfo=None),
    }
    rows = []
    for pmid in pmids:
        record = by_pmid.get(pmid)
        if record is None:
            rows.append({"pmid": pmid, "status": MISSING, **provenance})
            tally.missing += 1
        else:
            rows.append({**record, "status": FOUND, **provenance})
            tally.found += 1
    return rows


def _parse(body: bytes, what: str) -> list[dict[str, Any]]:
    try:
        return parse_pubmed_xml(body)
    except ValueError as error:  # NCBI answered something that is not PubMed XML
        raise EutilsError(f"{what}: {error}") from error

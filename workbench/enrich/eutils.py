"""A small NCBI E-utilities client: rate limited, retried with backoff, one `requests` session."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests

DEFAULT_EUTILS_BASE = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
TOOL_NAME = "biomedica-workbench"
RATE_WITHOUT_KEY = 3.0  # requests per second NCBI allows without an API key
RATE_WITH_KEY = 10.0  # ... and with one
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0

log = logging.getLogger(__name__)


class EutilsError(RuntimeError):
    """E-utilities did not answer usefully (after retries where retrying made sense)."""


class RateLimiter:
    """Minimum interval between request starts, shared by every request (and thread) that uses it.

    `safety_s` is added to the interval so the requests still arrive at NCBI at the allowed rate when
    network jitter bunches them up a little.
    """

    def __init__(
        self,
        requests_per_second: float,
        *,
        safety_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {requests_per_second}")
        self.interval = 1.0 / requests_per_second + safety_s
        self._clock, self._sleep = clock, sleep
        self._next_start = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next request may start, and book that slot."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self.interval
        if start > now:
            self._sleep(start - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry 429/5xx answers, timeouts and dropped connections."""

    max_attempts: int = 5
    backoff_s: float = 1.0  # first wait; doubles with every further attempt
    timeout_s: float = 120.0  # per request (connect and read)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("backoff_s must be >= 0 and timeout_s > 0")

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); honours a numeric Retry-After."""
        delay = self.backoff_s * 2 ** (attempt - 1)
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER_S))
        return delay


class EutilsClient:
    """POSTs to `<base>/<utility>.fcgi` with NCBI's identification fields; counts the requests it sends."""

    def __init__(
        self,
        base: str = DEFAULT_EUTILS_BASE,
        *,
        api_key: str | None = None,
        email: str | None = None,
        tool: str = TOOL_NAME,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"E-utilities base must be an http(s) URL, got {base!r}")
        self.base = base if base.endswith("/") else base + "/"
        self.identity = {
            "tool": tool,
            **({"email": email} if email else {}),
            **({"api_key": api_key} if api_key else {}),
        }
        self.limiter = limiter or RateLimiter(RATE_WITH_KEY if api_key else RATE_WITHOUT_KEY)
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self.requests_sent = 0

    def efetch_pubmed(self, pmids: Sequence[str]) -> bytes:
        """Raw PubMed XML for `pmids` (one POST, however many ids)."""
        return self.post("efetch", {"db": "pubmed", "id": ",".join(pmids), "retmode": "xml"})

    def post(self, utility: str, form: dict[str, str]) -> bytes:
        """Body of a successful answer; retries what is worth retrying, raises EutilsError otherwise."""
        url = f"{self.base}{utility}.fcgi"
        data = {**form, **self.identity}
        for attempt in range(1, self.retry.max_attempts + 1):
            self.limiter.wait()
            self.requests_sent += 1
            try:
                response = self.session.post(url, data=data, timeout=self.retry.timeout_s)
            except (requests.Timeout, requests.ConnectionError) as error:
                problem, retry_after = f"{type(error).__name__}: {error}", None
            else:
                if response.status_code == 200:
                    return response.content
                problem = f"HTTP {response.status_code}: {response.text[:200].strip()!r}"
                if response.status_code not in RETRY_STATUSES:
                    raise EutilsError(f"{utility} at {url} failed: {problem}")
                retry_after = response.headers.get("Retry-After")
            if attempt == self.retry.max_attempts:
                raise EutilsError(f"{utility} at {url} failed after {attempt} attempts: {problem}")
            delay = self.retry.delay(attempt, retry_after)
            log.warning("%s attempt %d failed (%s); retrying in %.1f s", utility, attempt, problem, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.session.close()

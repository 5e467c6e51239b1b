"""A small NCBI E-utilities client: rate limited, retried with `workbench.retry`, one `requests` session."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import requests

from workbench.errors import UserError
from workbench.retry import (
    FetchError,
    PermanentError,
    RetryPolicy,
    TransientError,
    call_with_retries,
    parse_retry_after,
    retryable_status,
)

DEFAULT_EUTILS_BASE = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
TOOL_NAME = "biomedica-workbench"
RATE_WITHOUT_KEY = 3.0  # requests per second NCBI allows without an API key
RATE_WITH_KEY = 10.0  # ... and with one
DEFAULT_TIMEOUT_S = 120.0  # per request (connect and read)

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
            raise UserError(f"requests_per_second must be positive, got {requests_per_second}")
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
        timeout_s: float = DEFAULT_TIMEOUT_S,
        session: requests.Session | None = None,
    ) -> None:
        if not base.startswith(("http://", "https://")):
            raise UserError(f"E-utilities base must be an http(s) URL, got {base!r}")
        self.base = base if base.endswith("/") else base + "/"
        self.identity = {
            "tool": tool,
            **({"email": email} if email else {}),
            **({"api_key": api_key} if api_key else {}),
        }
        self.limiter = limiter or RateLimiter(RATE_WITH_KEY if api_key else RATE_WITHOUT_KEY)
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.requests_sent = 0

    def efetch_pubmed(self, pmids: Sequence[str]) -> bytes:
        """Raw PubMed XML for `pmids` (one POST, however many ids)."""
        return self.post("efetch", {"db": "pubmed", "id": ",".join(pmids), "retmode": "xml"})

    def post(self, utility: str, form: dict[str, str]) -> bytes:
        """Body of a successful answer; retries what is worth retrying, raises EutilsError otherwise."""
        url = f"{self.base}{utility}.fcgi"
        data = {**form, **self.identity}

        def attempt() -> bytes:
            self.limiter.wait()
            self.requests_sent += 1
            try:
                response = self.session.post(url, data=data, timeout=self.timeout_s)
            except (requests.Timeout, requests.ConnectionError) as error:
                raise TransientError("connection", f"{type(error).__name__}: {error}") from error
            if response.status_code == 200:
                return response.content
            code = response.status_code
            problem = f"HTTP {code}: {response.text[:200].strip()!r}"
            if retryable_status(code):
                raise TransientError(f"http_{code}", problem, parse_retry_after(response.headers.get("Retry-After")))
            raise PermanentError(f"http_{code}", problem)

        def warn(error: FetchError, delay: float) -> None:
            log.warning("%s attempt %d failed (%s); retrying in %.1f s", utility, error.attempts, error.detail, delay)

        try:
            return call_with_retries(attempt, self.retry, on_retry=warn)[0]
        except PermanentError as error:
            raise EutilsError(f"{utility} at {url} failed: {error.detail}") from error
        except FetchError as error:
            raise EutilsError(f"{utility} at {url} failed after {error.attempts} attempts: {error.detail}") from error

    def close(self) -> None:
        self.session.close()

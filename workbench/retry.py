"""The one retry policy for network calls (PMC downloads, the OA service, E-utilities).

Exponential backoff with full jitter; a server's `Retry-After` (seconds or an HTTP date) raises the wait to at
least that, capped by `backoff_max`. Callers sort failures into `TransientError` (retried) and `PermanentError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from workbench.errors import UserError

T = TypeVar("T")

# HTTP answers worth another try: request timeout, too early, too many requests, and every 5xx.
RETRYABLE_STATUS = frozenset({408, 425, 429})


class FetchError(Exception):
    """A failed fetch: `reason` is a short machine-readable code, `detail` says what happened.

    `attempts` is filled in by `call_with_retries` (how many tries were spent before giving up).
    """

    def __init__(self, reason: str, detail: str, retry_after: float = 0.0) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        self.attempts = 1


class TransientError(FetchError):
    """Worth retrying: timeout, 5xx, 429, dropped connection, truncated or corrupt body."""


class PermanentError(FetchError):
    """Retrying will not fix it: 403, not found anywhere, not open access."""


def retryable_status(code: int) -> bool:
    """Whether an HTTP status code is worth retrying (408, 425, 429 and every 5xx)."""
    return code in RETRYABLE_STATUS or code >= 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float:
    """Seconds a `Retry-After` header asks for: a number of seconds or an HTTP date; 0 when absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return 0.0
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; before try n+1 sleep uniform(0, min(backoff_max, backoff_base * 2**(n-1))).

    A server's retry-after hint raises that wait to at least the hint, capped by `backoff_max`.
    """

    attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise UserError(f"retry attempts must be at least 1, got {self.attempts}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise UserError("retry backoff must not be negative")

    def delay(self, failed_attempts: int, retry_after: float = 0.0, rng: random.Random | None = None) -> float:
        """Seconds to wait after `failed_attempts` failures (full jitter keeps parallel clients from syncing up)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (failed_attempts - 1))
        return max((rng or random).uniform(0, ceiling), min(retry_after, self.backoff_max))


def call_with_retries(
    action: Callable[[], T],
    policy: RetryPolicy,
    on_retry: Callable[[FetchError, float], None] = lambda error, delay: None,
    sleep: Callable[[float], None] | None = None,
) -> tuple[T, int]:
    """Run `action` until it succeeds; retry on TransientError. Return (result, attempts used).

    The last TransientError is re-raised once `policy.attempts` are spent; PermanentError is never retried.
    Either carries `attempts`. `on_retry(error, seconds)` is told about each failure before the wait.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return action(), attempt
        except FetchError as error:
            error.attempts = attempt
            if isinstance(error, PermanentError) or attempt == policy.attempts:
                raise
            delay = policy.delay(attempt, error.retry_after)
            on_retry(error, delay)
            (sleep or time.sleep)(delay)
    raise AssertionError("unreachable")

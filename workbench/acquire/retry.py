"""Retry with exponential backoff and full jitter, for transient network failures."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


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


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; before try n+1 sleep uniform(0, min(backoff_max, backoff_base * 2**(n-1)))."""

    attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, got {self.attempts}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("retry backoff must not be negative")

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after `failed_attempts` failures (full jitter keeps parallel clients from syncing up)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (failed_attempts - 1))
        return (rng or random).uniform(0, ceiling)


def call_with_retries(
    action: Callable[[], T],
    policy: RetryPolicy,
    on_retry: Callable[[FetchError], None] = lambda error: None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, int]:
    """Run `action` until it succeeds; retry on TransientError. Return (result, attempts used).

    The last TransientError is re-raised once `policy.attempts` are spent; PermanentError is never retried.
    Either carries `attempts`. A server's retry-after hint raises the wait to at least that (capped by backoff_max).
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return action(), attempt
        except FetchError as error:
            error.attempts = attempt
            if isinstance(error, PermanentError) or attempt == policy.attempts:
                raise
            on_retry(error)
            sleep(max(policy.delay(attempt), min(error.retry_after, policy.backoff_max)))
    raise AssertionError("unreachable")

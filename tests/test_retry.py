"""The one retry policy (workbench.retry): full-jitter backoff, Retry-After honoured, used by acquire and enrich."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from workbench.enrich.eutils import EutilsClient, EutilsError, RateLimiter
from workbench.errors import UserError
from workbench.retry import (
    PermanentError,
    RetryPolicy,
    TransientError,
    call_with_retries,
    parse_retry_after,
    retryable_status,
)


class _Top(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    assert [policy.delay(n, rng=_Top()) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    draws = {policy.delay(3) for _ in range(100)}
    assert len(draws) > 50 and all(0 <= d <= 4.0 for d in draws)


def test_retry_after_raises_the_wait_but_stays_capped() -> None:
    policy = RetryPolicy(backoff_base=0.01, backoff_max=60.0)
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=3600.0) == 60.0


def test_parse_retry_after_takes_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0 and parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    for nothing in (None, "", "soon", "-5"):
        assert parse_retry_after(nothing) == 0.0


def test_retryable_statuses() -> None:
    assert all(retryable_status(code) for code in (408, 425, 429, 500, 503, 599))
    assert not any(retryable_status(code) for code in (400, 403, 404, 410))


def test_call_with_retries_retries_transient_only_and_reports_each_wait() -> None:
    answers = [TransientError("http_503", "busy", retry_after=2.0), TransientError("timeout", "slow"), "ok"]
    waits, told = [], []

    def action() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    policy = RetryPolicy(attempts=3, backoff_base=0.01)
    result = call_with_retries(action, policy, on_retry=lambda e, s: told.append((e.reason, s)), sleep=waits.append)
    assert result == ("ok", 3)
    assert waits[0] == 2.0 and 0 <= waits[1] <= 0.02 and [reason for reason, _ in told] == ["http_503", "timeout"]
    with pytest.raises(PermanentError) as error:
        call_with_retries(lambda: (_ for _ in ()).throw(PermanentError("http_403", "no")), policy, sleep=waits.append)
    assert error.value.attempts == 1 and len(waits) == 2


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="at least 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(UserError, match="negative"):
        RetryPolicy(backoff_base=-1)


class _Answer:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.headers, self.text, self.content = status, headers or {}, "busy", b"<ok/>"


class _Session:
    def __init__(self, answers: list[object]) -> None:
        self.answers = answers

    def post(self, url: str, data: dict, timeout: float) -> _Answer:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        pass


def test_eutils_uses_the_same_policy_and_honours_retry_after(monkeypatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("workbench.retry.time.sleep", waits.append)
    answers = [_Answer(429, {"Retry-After": "3"}), requests.ConnectionError("reset"), _Answer(200)]
    client = EutilsClient(
        "http://127.0.0.1:9/",
        limiter=RateLimiter(1000),
        retry=RetryPolicy(attempts=3, backoff_base=0.01),
        session=_Session(answers),
    )
    assert client.post("efetch", {}) == b"<ok/>" and client.requests_sent == 3
    assert waits[0] == 3.0 and waits[1] <= 0.02
    failing = EutilsClient(
        "http://127.0.0.1:9/",
        limiter=RateLimiter(1000),
        retry=RetryPolicy(attempts=2),
        session=_Session([_Answer(400)]),
    )
    with pytest.raises(EutilsError, match=r"efetch at .* failed: HTTP 400"):
        failing.post("efetch", {})

"""The retry policy: which errors are retried, how long it waits, when it gives up."""

from __future__ import annotations

import pytest

from openrouter import (
    AuthenticationError,
    BadRequest,
    ConnectionFailed,
    InsufficientCredits,
    ModerationError,
    NoEndpoint,
    Overloaded,
    RateLimited,
    RequestTimeout,
    RetryPolicy,
    UpstreamError,
)

POLICY = RetryPolicy(max_attempts=4, base_delay=1, max_delay=3, max_total=30, jitter=False)


@pytest.mark.parametrize("cls", [RequestTimeout, RateLimited, UpstreamError, Overloaded, ConnectionFailed])
def test_it_retries_transient_errors(cls):
    assert POLICY.delay(1, cls("x"), elapsed=0) == 1


@pytest.mark.parametrize("cls", [BadRequest, AuthenticationError, InsufficientCredits, ModerationError, NoEndpoint])
def test_it_never_retries_what_would_fail_again(cls):
    assert POLICY.delay(1, cls("x"), elapsed=0) is None


def test_it_does_not_retry_other_exceptions():
    assert POLICY.delay(1, ValueError("bug"), elapsed=0) is None


def test_it_backs_off_exponentially_up_to_max_delay():
    assert [POLICY.delay(n, Overloaded("x"), elapsed=0) for n in (1, 2, 3)] == [1, 2, 3]


def test_it_stops_after_max_attempts():
    assert POLICY.delay(4, Overloaded("x"), elapsed=0) is None


def test_full_jitter_stays_between_zero_and_the_backoff():
    policy = RetryPolicy(base_delay=1, max_delay=8, max_attempts=10)
    delays = [policy.delay(3, Overloaded("x"), elapsed=0) for _ in range(200)]
    assert all(0 <= d <= 4 for d in delays)
    assert len(set(delays)) > 1


def test_it_honours_retry_after_beyond_max_delay():
    assert POLICY.delay(1, RateLimited("x", retry_after=10), elapsed=0) == 10


def test_it_gives_up_when_retry_after_would_pass_max_total():
    assert POLICY.delay(1, RateLimited("x", retry_after=10), elapsed=25) is None


def test_it_gives_up_when_the_backoff_would_pass_max_total():
    assert POLICY.delay(2, Overloaded("x"), elapsed=29) is None

"""The one-round-trip rate-limit script: requests, tokens and stream slots taken together, atomically."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from billing.ratelimit import STREAM_SLOT_TTL, Limits, release_stream_slot, renew_stream_slots, take
from orweb.errors import InvalidRequest, RateLimitExceeded


def _limits(rpm=None, tpm=None, streams=None):
    return Limits(requests_per_minute=rpm, tokens_per_minute=tpm, concurrent_streams=streams)


def test_racing_requests_get_exactly_the_limit():
    admitted: list[bool] = []
    barrier = threading.Barrier(12)

    def call():
        barrier.wait()
        try:
            take(7, _limits(rpm=5), 10)
            admitted.append(True)
        except RateLimitExceeded:
            admitted.append(False)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 5


def test_tokens_are_refused_with_a_retry_time_within_the_window():
    take(7, _limits(tpm=1000), 600)
    with pytest.raises(RateLimitExceeded) as refused:
        take(7, _limits(tpm=1000), 600)
    assert 1 <= refused.value.retry_after <= 60
    take(7, _limits(tpm=1000), 400)


def test_a_request_over_the_token_limit_is_invalid_and_not_counted():
    with pytest.raises(InvalidRequest):
        take(7, _limits(rpm=1, tpm=100), 101)
    take(7, _limits(rpm=1, tpm=100), 100)


def test_a_request_refused_for_a_slot_still_counts_against_requests():
    take(7, _limits(rpm=2, streams=1), 1, slot="a")
    with pytest.raises(RateLimitExceeded, match="concurrent streams"):
        take(7, _limits(rpm=2, streams=1), 1, slot="b")
    release_stream_slot(7, "a")
    with pytest.raises(RateLimitExceeded, match="requests per minute"):
        take(7, _limits(rpm=2, streams=1), 1, slot="c")


def test_calls_without_a_slot_ignore_the_stream_limit():
    take(7, _limits(streams=1), 1, slot="a")
    take(7, _limits(streams=1), 1)


def test_a_stream_slot_is_a_short_lease_that_its_process_renews(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)
    take(7, _limits(streams=2), 1, slot="a")
    [(_, first)] = client.zrange("orweb:streams:7", 0, -1, withscores=True)
    assert first <= time.time() + STREAM_SLOT_TTL <= time.time() + 60  # a dead process's slot is back soon
    renew_stream_slots([(7, "a"), (7, "gone")])
    [(member, renewed)] = client.zrange("orweb:streams:7", 0, -1, withscores=True)
    assert member == b"a" and renewed > first  # renewed; a slot already given back is not taken again

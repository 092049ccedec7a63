"""Per-user rate limits in Redis: requests per minute, tokens per minute, concurrent streams.

Requests and tokens use the `limits` library's sliding-window counter (two Redis counters per key,
so a 200,000 tokens/min limit costs the same as 60 requests/min; its moving window would store one
list entry per token). A refused request still counts against requests/min. Concurrent streams are a
sorted set per user, scored by when each slot expires, so a crashed process can't hold a slot forever.

Effective limits: the user's own RateLimit row wins field by field; otherwise the most generous value
among the user's groups' rows; otherwise the settings ORWEB_DEFAULT_RPM / _TPM / _CONCURRENT.
If Redis can't be reached, calls are refused (ServiceUnavailable): no unmetered spending.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import redis
from django.conf import settings
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from billing.models import RateLimit
from gateway.errors import InvalidRequest, RateLimitExceeded, ServiceUnavailable

T = TypeVar("T")

STREAM_SLOT_TTL = 15 * 60

_ACQUIRE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None
    tokens_per_minute: int | None
    concurrent_streams: int | None


@dataclass
class _Backend:
    client: redis.Redis
    limiter: SlidingWindowCounterRateLimiter
    acquire_slot: Any


_backends: dict[str, _Backend] = {}


def _backend() -> _Backend:
    url = settings.REDIS_URL
    backend = _backends.get(url)
    if backend is None:
        pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        client = redis.Redis(connection_pool=pool)
        storage = RedisStorage(url, connection_pool=pool, key_prefix="orweb:rl", wrap_exceptions=True)
        backend = _Backend(
            client, SlidingWindowCounterRateLimiter(storage), client.register_script(_ACQUIRE_SLOT)
        )
        _backends[url] = backend
    return backend


def _fail_closed(function: Callable[..., T]) -> Callable[..., T]:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except (redis.RedisError, StorageError) as exc:
            raise ServiceUnavailable(
                "Rate limits can't be checked right now (Redis unreachable); try again soon."
            ) from exc

    return wrapper


def effective_limits(user: Any) -> Limits:
    rows = list(RateLimit.objects.filter(user=user)) + list(RateLimit.objects.filter(group__user=user))
    own = next((row for row in rows if row.user_id is not None), None)
    groups = [row for row in rows if row.group_id is not None]

    def pick(field: str, default: int | None) -> int | None:
        if own is not None and getattr(own, field) is not None:
            return getattr(own, field)
        values = [getattr(row, field) for row in groups if getattr(row, field) is not None]
        return max(values) if values else default

    return Limits(
        requests_per_minute=pick("requests_per_minute", getattr(settings, "ORWEB_DEFAULT_RPM", 60)),
        tokens_per_minute=pick("tokens_per_minute", getattr(settings, "ORWEB_DEFAULT_TPM", 200_000)),
        concurrent_streams=pick("concurrent_streams", getattr(settings, "ORWEB_DEFAULT_CONCURRENT", 4)),
    )


def _retry_after(backend: _Backend, item: RateLimitItemPerMinute, *identifiers: str) -> int:
    stats = backend.limiter.get_window_stats(item, *identifiers)
    return max(1, math.ceil(stats.reset_time - time.time()))


@_fail_closed
def check_rate(user_id: int, limits: Limits, tokens: int) -> None:
    """Count one request of up to `tokens` tokens, or raise RateLimitExceeded saying when to retry."""
    backend = _backend()
    who = str(user_id)
    rpm = limits.requests_per_minute
    if rpm is not None:
        item = RateLimitItemPerMinute(rpm)
        if not backend.limiter.hit(item, "rpm", who):
            wait = _retry_after(backend, item, "rpm", who)
            raise RateLimitExceeded(
                f"Rate limit: {rpm} requests per minute. Retry in {wait} s.", retry_after=wait
            )
    tpm = limits.tokens_per_minute
    if tpm is not None:
        if tokens > tpm:
            raise InvalidRequest(
                f"This request (up to {tokens} tokens) is larger than your limit of {tpm} tokens per minute; "
                "lower max_tokens or shorten the prompt.",
                param="max_tokens",
            )
        item = RateLimitItemPerMinute(tpm)
        if not backend.limiter.hit(item, "tpm", who, cost=tokens):
            wait = _retry_after(backend, item, "tpm", who)
            raise RateLimitExceeded(
                f"Rate limit: {tpm} tokens per minute. Retry in {wait} s.", retry_after=wait
            )


def _slots_key(user_id: int) -> str:
    return f"orweb:streams:{user_id}"


@_fail_closed
def acquire_stream_slot(user_id: int, limits: Limits, slot: str) -> None:
    """Take one of the user's concurrent-stream slots, or raise RateLimitExceeded."""
    limit = limits.concurrent_streams
    if limit is None:
        return
    now = time.time()
    if not _backend().acquire_slot(
        keys=[_slots_key(user_id)], args=[now, now + STREAM_SLOT_TTL, limit, slot, STREAM_SLOT_TTL]
    ):
        raise RateLimitExceeded(
            f"Rate limit: {limit} concurrent streams. Retry when one of yours has finished.", retry_after=1
        )


def release_stream_slot(user_id: int, slot: str) -> None:
    """Give a stream slot back (best effort: if Redis is gone, the slot expires by itself)."""
    with contextlib.suppress(redis.RedisError):
        _backend().client.zrem(_slots_key(user_id), slot)

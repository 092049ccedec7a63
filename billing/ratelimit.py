"""Per-user rate limits in Redis: requests per minute, tokens per minute, concurrent streams.

Requests and tokens use a sliding-window counter (two Redis counters per key, the algorithm of the
`limits` library's SlidingWindowCounter, so a 200,000 tokens/min limit costs the same as 60 requests/min).
Concurrent streams are a sorted set per user, scored by when each slot expires: a slot is a lease of
STREAM_SLOT_TTL seconds that its process renews while the call lives (`billing.attempts`), so a process that
dies gives its slots back within that time. All three are checked and taken by one Lua script (`_ADMIT`), one round trip
per call instead of the three that `limits` plus the slot script took. A request refused for tokens or
for a stream slot still counts against requests/min.

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

from billing.models import RateLimit
from orweb import redis_clients
from orweb.errors import InvalidRequest, RateLimitExceeded, ServiceUnavailable

T = TypeVar("T")

STREAM_SLOT_TTL = 30
WINDOW_MS = 60_000

# KEYS: rpm previous/current window, tpm previous/current window, stream slots.
# ARGV: rpm limit, tpm limit (-1: none), tokens, window ms, slot limit (-1: none), now (s), slot expiry (s),
# slot id, slot set ttl (s). Returns {0} when admitted, {1|2, retry ms} when refused for requests|tokens,
# {3, 0} when every stream slot is taken.
_ADMIT = """
local window = tonumber(ARGV[4])
local function used(prev_key, cur_key)
    local cur_ttl = tonumber(redis.call('pttl', cur_key))
    if cur_ttl > 0 and cur_ttl < window then
        redis.call('rename', cur_key, prev_key)
        redis.call('set', cur_key, 0, 'PX', cur_ttl + window)
    end
    local prev = tonumber(redis.call('get', prev_key)) or 0
    local prev_ttl = math.max(tonumber(redis.call('pttl', prev_key)) or 0, 0)
    local cur = tonumber(redis.call('get', cur_key)) or 0
    return math.floor(prev * prev_ttl / window) + cur, prev, prev_ttl
end
local function take(prev_key, cur_key, limit, amount)
    local count, prev, prev_ttl = used(prev_key, cur_key)
    local excess = count + amount - limit
    if excess > 0 then
        if prev > 0 and excess <= math.floor(prev * prev_ttl / window) then
            return math.ceil(excess * window / prev)
        end
        return math.max(tonumber(redis.call('pttl', cur_key)) - window, 0)
    end
    if redis.call('exists', cur_key) == 1 then
        redis.call('incrby', cur_key, amount)
    else
        redis.call('set', cur_key, amount, 'PX', window * 2)
    end
    return -1
end
local rpm, tpm, slots = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
if rpm >= 0 then
    local wait = take(KEYS[1], KEYS[2], rpm, 1)
    if wait >= 0 then return {1, wait} end
end
if tpm >= 0 then
    local wait = take(KEYS[3], KEYS[4], tpm, tonumber(ARGV[3]))
    if wait >= 0 then return {2, wait} end
end
if slots >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[6])
    if redis.call('ZCARD', KEYS[5]) >= slots then return {3, 0} end
    redis.call('ZADD', KEYS[5], ARGV[7], ARGV[8])
    redis.call('EXPIRE', KEYS[5], ARGV[9])
end
return {0}
"""


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None
    tokens_per_minute: int | None
    concurrent_streams: int | None


@dataclass
class _Backend:
    client: redis.Redis
    admit: Any


_backends: dict[str, _Backend] = {}


def _backend() -> _Backend:
    client = redis_clients.sync_client()
    backend = _backends.get(settings.REDIS_URL)
    if backend is None or backend.client is not client:
        backend = _backends[settings.REDIS_URL] = _Backend(client, client.register_script(_ADMIT))
    return backend


def _fail_closed(function: Callable[..., T]) -> Callable[..., T]:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except redis.RedisError as exc:
            raise ServiceUnavailable(
                "Rate limits can't be checked right now (Redis unreachable); try again soon."
            ) from exc

    return wrapper


def limits_from(rows: list[RateLimit]) -> Limits:
    """The effective limits given every RateLimit row of a user and of their groups."""
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


def _slots_key(user_id: int) -> str:
    return f"orweb:streams:{user_id}"


@_fail_closed
def take(user_id: int, limits: Limits, tokens: int, slot: str | None = None) -> None:
    """Count one request of up to `tokens` tokens and, for a stream, take one of the user's concurrent
    slots (named `slot`); or raise RateLimitExceeded saying when to retry."""
    tpm = limits.tokens_per_minute
    if tpm is not None and tokens > tpm:
        raise InvalidRequest(
            f"This request (up to {tokens} tokens) is larger than your limit of {tpm} tokens per minute; "
            "lower max_tokens or shorten the prompt.",
            param="max_tokens",
        )
    rpm = limits.requests_per_minute
    slots = limits.concurrent_streams if slot is not None else None
    now = time.time()
    keys = [f"orweb:rl:{kind}:{user_id}:{window}" for kind in ("rpm", "tpm") for window in ("prev", "cur")]
    verdict = _backend().admit(
        keys=[*keys, _slots_key(user_id)],
        args=[
            -1 if rpm is None else rpm,
            -1 if tpm is None else tpm,
            tokens,
            WINDOW_MS,
            -1 if slots is None else slots,
            now,
            now + STREAM_SLOT_TTL,
            slot or "",
            STREAM_SLOT_TTL,
        ],
    )
    refused, wait = verdict[0], max(1, math.ceil(int(verdict[1] if len(verdict) > 1 else 0) / 1000))
    if refused == 1:
        raise RateLimitExceeded(f"Rate limit: {rpm} requests per minute. Retry in {wait} s.", retry_after=wait)
    if refused == 2:
        raise RateLimitExceeded(f"Rate limit: {tpm} tokens per minute. Retry in {wait} s.", retry_after=wait)
    if refused == 3:
        raise RateLimitExceeded(
            f"Rate limit: {slots} concurrent streams. Retry when one of yours has finished.", retry_after=1
        )


def renew_stream_slots(slots: list[tuple[int, str]]) -> None:
    """Extend the leases of live calls' stream slots (best effort; a slot Redis lost stays given back)."""
    if not slots:
        return
    expires = time.time() + STREAM_SLOT_TTL
    with contextlib.suppress(redis.RedisError):
        pipeline = _backend().client.pipeline(transaction=False)
        for user_id, slot in slots:
            pipeline.zadd(_slots_key(user_id), {slot: expires}, xx=True)
            pipeline.expire(_slots_key(user_id), STREAM_SLOT_TTL)
        pipeline.execute()


def release_stream_slot(user_id: int, slot: str) -> None:
    """Give a stream slot back (best effort: if Redis is gone, the slot expires by itself)."""
    with contextlib.suppress(redis.RedisError):
        _backend().client.zrem(_slots_key(user_id), slot)

"""How much one user can ask of the chat websockets: how many sockets they hold open, and how fast each
socket may send frames.

Sockets per user hold across processes: each open socket is a lease in a Redis sorted set per user
(`orweb:sockets:<user id>`, scored by when the lease expires), taken with one Lua script that first drops
expired leases, given back on disconnect, and renewed by its process every RENEW_EVERY seconds. A
process that dies stops renewing, so its sockets stop counting within LEASE_TTL, as
`billing.ratelimit`'s stream slots do. If Redis can't be reached the socket is let in (logged): this limit
guards the server's memory, not money, and spending is still refused by the gateway's own checks.

Frames per socket are a token bucket kept by the socket itself (nothing shared, nothing per frame in
Redis): FRAME_BURST frames at once, FRAMES_PER_SECOND after that. A frame over the limit is answered with
an error frame, and a socket that keeps sending after REFUSALS_BEFORE_CLOSE refusals (again a bucket,
refilled at REFUSALS_PER_SECOND, so an occasional burst is forgiven) is an abuser to close.

Each limit can be set in settings (ORWEB_WS_SOCKETS_PER_USER, ORWEB_WS_FRAMES_PER_SECOND,
ORWEB_WS_FRAME_BURST).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from chat.broadcast import RELAY_ERRORS, RELAY_TIMEOUT
from orweb.aio import one_per_loop
from orweb.redis_clients import async_client

log = logging.getLogger(__name__)

SOCKETS_PER_USER = 20
FRAMES_PER_SECOND = 5.0
FRAME_BURST = 20
REFUSALS_BEFORE_CLOSE = 20
REFUSALS_PER_SECOND = 1.0
LEASE_TTL = 60
RENEW_EVERY = 20

# KEYS: the user's lease set. ARGV: now, limit, lease expiry, lease id, set ttl. Returns 1 when taken.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def sockets_key(user_id: int) -> str:
    return f"orweb:sockets:{user_id}"


def sockets_per_user() -> int:
    return getattr(settings, "ORWEB_WS_SOCKETS_PER_USER", SOCKETS_PER_USER)


@dataclass
class _Leases:
    """This process's (this loop's) socket leases, and the task that renews them while there are any."""

    held: dict[str, int] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    renewer: asyncio.Task | None = None


_leases: dict[int, _Leases] = {}


def _local() -> _Leases:
    return one_per_loop(_leases, _Leases)


async def take_socket(user_id: int, lease: str) -> bool:
    """Take one of the user's sockets, named `lease` (the socket's channel name); False when they all are
    taken."""
    now = time.time()
    client = async_client()
    try:
        async with asyncio.timeout(RELAY_TIMEOUT):
            taken = await client.register_script(_TAKE)(
                keys=[sockets_key(user_id)], args=[now, sockets_per_user(), now + LEASE_TTL, lease, LEASE_TTL]
            )
    except RELAY_ERRORS as exc:
        log.warning("socket limit not checked for user %s (Redis unreachable): %r", user_id, exc)
        return True
    if not taken:
        return False
    local = _local()
    local.held[lease] = user_id
    if local.renewer is None or local.renewer.done():
        local.renewer = asyncio.create_task(_renew_while_held(local))
    return True


async def release_socket(user_id: int, lease: str) -> None:
    """Give a socket back (best effort: if Redis is away, the lease expires by itself)."""
    local = _local()
    if local.held.pop(lease, None) is None:
        return
    local.changed.set()
    try:
        async with asyncio.timeout(RELAY_TIMEOUT):
            await async_client().zrem(sockets_key(user_id), lease)
    except RELAY_ERRORS as exc:
        log.warning("socket lease %s of user %s left to expire (Redis unreachable): %r", lease, user_id, exc)


async def renew(local: _Leases | None = None) -> None:
    """Extend the leases of this process's open sockets (a lease Redis lost stays given back)."""
    held = dict((local or _local()).held)
    if not held:
        return
    pipeline = async_client().pipeline(transaction=False)
    for lease, user_id in held.items():
        pipeline.zadd(sockets_key(user_id), {lease: time.time() + LEASE_TTL}, xx=True)
        pipeline.expire(sockets_key(user_id), LEASE_TTL)
    try:
        async with asyncio.timeout(RELAY_TIMEOUT):
            await pipeline.execute()
    except RELAY_ERRORS as exc:
        log.warning("socket leases not renewed (Redis unreachable): %r", exc)


async def _renew_while_held(local: _Leases) -> None:
    """Renew every RENEW_EVERY seconds; end as soon as the last socket is given back."""
    while local.held:
        try:
            async with asyncio.timeout(RENEW_EVERY):
                while local.held:
                    await local.changed.wait()
                    local.changed.clear()
        except TimeoutError:
            await renew(local)


class _Bucket:
    """A token bucket: `capacity` at once, refilled at `rate` a second."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FrameBudget:
    """One socket's allowance of frames, and of refused frames before it counts as an abuser."""

    def __init__(self) -> None:
        self.frames = _Bucket(
            getattr(settings, "ORWEB_WS_FRAME_BURST", FRAME_BURST),
            getattr(settings, "ORWEB_WS_FRAMES_PER_SECOND", FRAMES_PER_SECOND),
        )
        self.refusals = _Bucket(REFUSALS_BEFORE_CLOSE, REFUSALS_PER_SECOND)

    @property
    def per_second(self) -> float:
        return self.frames.rate

    def allow(self) -> bool:
        """Whether a frame arriving now may be worked on."""
        return self.frames.take()

    def forgive(self) -> bool:
        """Note a refused frame; False once the socket has had more refusals than it is allowed."""
        return self.refusals.take()

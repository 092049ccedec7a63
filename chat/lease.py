"""A streaming reply's lease: how chat.sweep tells a reply whose process died from one still streaming.

The runner holds `chat:msg:<id>:runner` in Redis (LEASE_TTL seconds, refreshed every LEASE_REFRESH) and,
at each refresh, touches its row (a checkpoint, which stamps `checkpointed`). The sweep finishes a reply
only when both signs are gone: no lease, and no checkpoint for longer than LEASE_TTL. So a process that
died is noticed within LEASE_TTL plus one sweep, and a Redis restart (every lease lost at once) does not
make live replies look dead: their rows were touched within LEASE_REFRESH, and the next refresh writes
the lease again. Redis failing here is logged and retried, never allowed to end the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from chat.broadcast import RELAY_ERRORS, RELAY_TIMEOUT, relay_back, relay_lost
from orweb.redis_clients import async_client

LEASE_TTL = 20
LEASE_REFRESH = 5


def lease_key(message_id: int) -> str:
    return f"chat:msg:{message_id}:runner"


async def _refresh(message_id: int) -> None:
    try:
        async with asyncio.timeout(RELAY_TIMEOUT):
            await async_client().set(lease_key(message_id), "1", ex=LEASE_TTL)
    except RELAY_ERRORS as exc:
        relay_lost(exc)
    else:
        relay_back()


async def hold(message_id: int, touch: Callable[[], None]) -> None:
    """Hold the reply's lease and touch its row every LEASE_REFRESH seconds, until cancelled; then let go
    of the lease (if Redis can be reached: otherwise it expires)."""
    try:
        await _refresh(message_id)
        while True:
            await asyncio.sleep(LEASE_REFRESH)
            touch()
            await _refresh(message_id)
    finally:
        with contextlib.suppress(*RELAY_ERRORS):
            await asyncio.shield(asyncio.wait_for(async_client().delete(lease_key(message_id)), RELAY_TIMEOUT))

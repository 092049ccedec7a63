"""The process's Redis clients, built in one place from `REDIS_URL`.

* `sync_client()`: one per process (redis-py's pool is thread-safe), with short timeouts so a Redis
  outage fails a request fast instead of hanging it (the gateway then refuses: nothing unmetered).
* `async_client()`: one per running event loop, shared by every runner and socket of the process;
  callers wait for a free connection rather than opening more than ASYNC_CONNECTIONS.

Both decode replies to `str`.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from django.conf import settings

from orweb.aio import one_per_loop

ASYNC_CONNECTIONS = 64
CONNECT_TIMEOUT = 1
SOCKET_TIMEOUT = 2

_sync_clients: dict[str, redis.Redis] = {}
_async_clients: dict[int, aioredis.Redis] = {}


def sync_client() -> redis.Redis:
    """The process's blocking Redis client for the current `REDIS_URL`."""
    url = settings.REDIS_URL
    client = _sync_clients.get(url)
    if client is None:
        client = _sync_clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT, decode_responses=True
        )
    return client


async def ping_fresh(timeout: float) -> None:
    """Ping Redis over a connection of its own, for the health check: the shared pool could be busy (and
    make a loaded process look as if Redis were down) or hold a connection that no longer works."""
    client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout)
    try:
        await client.ping()
    finally:
        await client.aclose()


def async_client() -> aioredis.Redis:
    """This loop's Redis client."""
    return one_per_loop(_async_clients, _new_async_client)


def _new_async_client() -> aioredis.Redis:
    # No client name/version: redis-py would otherwise read its package metadata from disk for every
    # new connection and send CLIENT SETINFO, which under a burst of replies costs the loop real time.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=ASYNC_CONNECTIONS,
        timeout=10,
        decode_responses=True,
        driver_info=None,
    )
    return aioredis.Redis(connection_pool=pool)

"""Health checks for the database, Redis and the upstream OpenRouter API."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

CHECK_TIMEOUT = 3.0


def _database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # Back to the pool: no request cycle closes this thread's connection, which would stay checked
        # out for the life of the process.
        connection.close()


async def check_database() -> None:
    await sync_to_async(_database, thread_sensitive=True)()


async def check_redis() -> None:
    client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def check_upstream() -> None:
    from openrouter import OpenRouterClient

    async with OpenRouterClient(
        settings.OPENROUTER_API_KEY, settings.OPENROUTER_BASE_URL, connect_timeout=CHECK_TIMEOUT
    ) as client:
        await client.key()


async def run_checks() -> dict[str, str]:
    """Run every check concurrently; each reports "ok" or a short reason (never a secret)."""
    checks = {"database": check_database, "redis": check_redis, "upstream": check_upstream}

    async def one(check) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT + 1)
        except Exception as exc:  # a health page reports every failure rather than raising
            return f"down: {type(exc).__name__}"
        return "ok"

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))

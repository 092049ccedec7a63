"""Health checks for the database, Redis and the upstream OpenRouter API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from django.conf import settings
from django.db import connection

from orweb import redis_clients
from orweb.aio import db

CHECK_TIMEOUT = 3.0


@db
def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def check_redis() -> None:
    await redis_clients.ping_fresh(CHECK_TIMEOUT)


async def check_upstream() -> None:
    from openrouter import OpenRouterClient

    async with OpenRouterClient(
        settings.OPENROUTER_API_KEY, settings.OPENROUTER_BASE_URL, connect_timeout=CHECK_TIMEOUT
    ) as client:
        await client.key()


async def run_checks() -> dict[str, str]:
    """Run every check concurrently; each reports "ok" or a short reason (never a secret)."""
    checks = {"database": check_database, "redis": check_redis, "upstream": check_upstream}

    async def one(check: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT + 1)
        except Exception as exc:  # a health page reports every failure rather than raising
            return f"down: {type(exc).__name__}"
        return "ok"

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))

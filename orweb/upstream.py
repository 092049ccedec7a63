"""The OpenRouter client the gateway uses: one per running event loop, built from settings.

httpx connection pools belong to the loop that created them (daphne runs one loop for its life; Celery
tasks and sync callers make a loop per `async_to_sync`/`asyncio.run`), so clients are cached per loop,
and per (base URL, key) so tests that point settings at a simulator get a fresh client.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import weakref

from django.conf import settings

from openrouter import OpenRouterClient

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], OpenRouterClient]] = (
    weakref.WeakKeyDictionary()
)


def get_client() -> OpenRouterClient:
    """The client for the running loop and the current settings (must be called inside a coroutine)."""
    loop = asyncio.get_running_loop()
    key = (settings.OPENROUTER_BASE_URL, settings.OPENROUTER_API_KEY)
    per_loop = _clients.setdefault(loop, {})
    client = per_loop.get(key)
    if client is None:
        client = OpenRouterClient(
            settings.OPENROUTER_API_KEY,
            settings.OPENROUTER_BASE_URL,
            app_url=settings.ORWEB_SITE_URL,
            app_title=settings.ORWEB_APP_TITLE,
            idle_timeout=settings.OPENROUTER_IDLE_TIMEOUT,
            answer_timeout=settings.OPENROUTER_ANSWER_TIMEOUT,
            default_max_tokens=settings.OPENROUTER_DEFAULT_MAX_TOKENS,
        )
        per_loop[key] = client
    return client


def openrouter_user_id(user_pk: int) -> str:
    """A stable id for OpenRouter's `user` field that can't be turned back into the orweb user."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"orweb-user:{user_pk}".encode(), hashlib.sha256)
    return "orweb-" + digest.hexdigest()[:32]

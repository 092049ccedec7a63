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
from dataclasses import dataclass

from django.conf import settings

from openrouter import OpenRouterClient, RateLimited
from openrouter.retry import RetryPolicy

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, bool], OpenRouterClient]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class NoRateLimitWait(RetryPolicy):
    """The default retries, except that a 429 is not waited out in the call: a caller with other work
    (a batch run) puts the request back until Retry-After has passed and serves others meanwhile."""

    def delay(self, retry_number: int, error: BaseException, elapsed: float) -> float | None:
        if isinstance(error, RateLimited):
            return None
        return super().delay(retry_number, error, elapsed)


def get_client(*, wait_on_rate_limit: bool = True) -> OpenRouterClient:
    """The client for the running loop and the current settings (must be called inside a coroutine);
    `wait_on_rate_limit=False`: one whose retries leave 429s to the caller (`NoRateLimitWait`)."""
    loop = asyncio.get_running_loop()
    key = (settings.OPENROUTER_BASE_URL, settings.OPENROUTER_API_KEY, wait_on_rate_limit)
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
            retry=None if wait_on_rate_limit else NoRateLimitWait(),
        )
        per_loop[key] = client
    return client


def openrouter_user_id(user_pk: int) -> str:
    """A stable id for OpenRouter's `user` field that can't be turned back into the orweb user."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"orweb-user:{user_pk}".encode(), hashlib.sha256)
    return "orweb-" + digest.hexdigest()[:32]

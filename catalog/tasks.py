"""Celery entry points for the catalog; the work is in `catalog.sync`."""

from __future__ import annotations

from celery import Task, shared_task

from catalog.sync import sync_from_openrouter
from openrouter import OpenRouterError


@shared_task(bind=True, name="catalog.tasks.sync_models", max_retries=3, default_retry_delay=60)
def sync_models(self: Task) -> str:
    """Sync the catalog from OpenRouter's `/models`; returns the one-line summary.

    Only failures that might pass a minute later are retried; the rest wait for the next hourly run.
    """
    try:
        return sync_from_openrouter().summary()
    except OpenRouterError as exc:
        if exc.retriable:
            raise self.retry(exc=exc) from exc
        raise

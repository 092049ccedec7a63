"""Celery tasks of chat: thin wrappers; the work is in chat.sweep."""

from __future__ import annotations

from celery import shared_task

from chat.sweep import sweep_orphans


@shared_task(expires=25)
def sweep_orphaned_replies() -> int:
    return sweep_orphans()

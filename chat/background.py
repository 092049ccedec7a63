"""The process's fire-and-forget tasks (publishing batches, titles, settling an admission nobody used):
kept referenced so they aren't garbage-collected mid-way, and so `chat.runner.drain` can wait for them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_tasks: set[asyncio.Task] = set()


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
    """Run `coro` in the background of this process."""
    task = asyncio.create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def pending() -> list[asyncio.Task]:
    """The background tasks not finished yet (safe to ask from another thread: the set is copied first)."""
    return [task for task in list(_tasks) if not task.done()]

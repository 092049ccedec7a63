"""Async plumbing every layer shares: running database work off the event loop, and one instance of an
asyncio object per running loop.

There is one way to run database work from async code, `db`: on the loop's thread pool (sized by
`orweb.serve`), never on the one thread `database_sync_to_async` shares by default, where 200 replies
starting at once would queue behind each other.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


def db(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """Run a database function on the loop's thread pool: calls of different replies and sockets then run
    side by side instead of queueing.

    Each call borrows a connection and hands it back. That happens inside the call: Django keeps
    connections in context-local storage, which `sync_to_async` copies per call, so a
    `close_old_connections()` outside it (as DatabaseSyncToAsync does) would miss the connection used."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


def one_per_loop(instances: dict[int, T], make: Callable[[], T]) -> T:
    """This event loop's instance, made on first use: asyncio objects can't cross loops, and tests run
    one loop each (an earlier loop's instance is dropped)."""
    loop_id = id(asyncio.get_running_loop())
    found = instances.get(loop_id)
    if found is None:
        instances.clear()
        found = instances[loop_id] = make()
    return found


async def streamed(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` for a StreamingHttpResponse under ASGI, pulled one at a time as the client takes them, each
    made on the request's thread (the one its view ran on, so a generator reading the database keeps one
    connection throughout). Given the iterator itself, Django would read it whole into memory first."""
    step = sync_to_async(next, thread_sensitive=True)
    try:
        while (chunk := await step(chunks, None)) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()

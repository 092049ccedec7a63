"""An SSE response that notices the client going away, so cancelled streams are billed as cancelled.

Starlette's StreamingResponse hides disconnects; here the body runs as a task next to one that waits
for ``http.disconnect``, and whichever finishes first decides how the response ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.types import Receive, Scope, Send


class EventStream:
    """ASGI response: ``text/event-stream`` from ``events``; ``on_disconnect`` runs if the client leaves."""

    def __init__(self, events: AsyncIterator[bytes], headers: dict[str, str], on_disconnect: Callable[[], None]):
        self.events = events
        self.headers = {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            **{k.lower(): v for k, v in headers.items()},
        }
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(k.encode(), v.encode()) for k, v in self.headers.items()],
            }
        )
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(self._wait_for_disconnect(receive))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            disconnected = not producer.done()
            if disconnected:
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
                self.on_disconnect()
        if not disconnected:
            producer.result()

    async def _produce(self, send: Send) -> None:
        async for data in self.events:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _wait_for_disconnect(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

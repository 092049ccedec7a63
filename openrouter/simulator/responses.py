"""ASGI responses that notice the client going away, so what it left behind is billed the way OpenRouter bills.

Starlette's StreamingResponse hides disconnects; here the body runs next to a task that waits for
``http.disconnect``, and whichever finishes first decides how the response ends:

* ``EventStream`` (``stream: true``): a client that leaves stops the generation, which is billed as
  cancelled for what was sent;
* ``KeptAliveReply`` (non-streamed): status 200 and the headers (``X-Generation-Id``) go out as soon as
  the request is accepted, then a whitespace byte every keep-alive interval while the reply is generated
  (OpenRouter keeps such connections open the same way), then the JSON. The generation runs apart from
  the request, so a client that leaves does not stop it: it is billed in full.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.types import Receive, Scope, Send

from openrouter.simulator.delivery import DropConnection

WHITESPACE = b"\n"


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
        await send(_start(self.headers))
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
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


class KeptAliveReply:
    """ASGI response: headers at once, whitespace every ``interval`` seconds until ``generation`` gives the
    body (``None``, or a generation cancelled by a reset: drop the connection). Never cancels ``generation``."""

    def __init__(self, generation: asyncio.Future[bytes | None], headers: dict[str, str], interval: float):
        self.generation = generation
        self.headers = {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}
        self.interval = interval

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(_start(self.headers))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        waiting = {self.generation, watcher}
        try:
            while not self.generation.done():
                await asyncio.wait(waiting, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
                if watcher.done():
                    return
                if not self.generation.done():
                    await send({"type": "http.response.body", "body": WHITESPACE, "more_body": True})
        finally:
            watcher.cancel()
        body = None if self.generation.cancelled() else self.generation.result()
        if body is None:
            raise DropConnection
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _start(headers: dict[str, str]) -> dict[str, object]:
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass

"""Stop requests between processes: a reply runs in one process, its Stop button may reach any other.

They travel on one Redis pub/sub channel; each process has one subscription to it (`StopListener`),
which cancels the replies it runs (the runner says which, through its `cancel` callback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from django.conf import settings
from redis.exceptions import RedisError

from orweb.aio import one_per_loop
from orweb.redis_clients import async_client

log = logging.getLogger(__name__)


def stop_channel() -> str:
    """The Redis pub/sub channel Stop requests travel on, named like the channel layer's own channels
    (its prefix keeps deployments and test runs sharing a Redis server apart)."""
    return f"{settings.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('prefix', 'asgi')}__chat_stop"


async def ask_everyone(message_id: int) -> None:
    """Ask every process to stop `message_id` (the one running it does)."""
    await async_client().publish(stop_channel(), str(message_id))


class StopListener:
    """This process's one subscription to `stop_channel()`, calling `cancel(message_id)` when asked.

    One for the process, not one per reply: subscribing and unsubscribing every reply cost two Redis
    round trips and a task each, all at once when many replies start or end together. It is subscribed
    before the first reply's upstream call and stays subscribed; if Redis drops it, it subscribes again.
    """

    def __init__(self, cancel: Callable[[int], object]) -> None:
        self._cancel = cancel
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._listen(), name="chat-stop-listener")

    async def ready(self, timeout: float = 2.0) -> None:
        """Wait until subscribed (at most `timeout`: a reply still runs, and stops here, without it)."""
        if not self._ready.done():
            await asyncio.wait([self._ready], timeout=timeout)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.wait([self._task])

    async def _listen(self) -> None:
        while True:
            pubsub = async_client().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(stop_channel())
                if not self._ready.done():
                    self._ready.set_result(None)
                async for message in pubsub.listen():
                    if str(message["data"]).isdigit():
                        self._cancel(int(message["data"]))
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except (RedisError, OSError):
                log.warning("lost the stop channel; subscribing again", exc_info=True)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                await asyncio.sleep(1)
            # Anything else (a loop torn down under it closes it with GeneratorExit) ends it without an
            # await: the connection goes with the loop.


_listeners: dict[int, StopListener] = {}


def listener(cancel: Callable[[int], object]) -> StopListener:
    """The stop listener of this event loop (made with `cancel` on first use)."""
    return one_per_loop(_listeners, lambda: StopListener(cancel))


async def stop_listening() -> None:
    """Unsubscribe this event loop's stop listener, before the loop ends (a server's loop never does;
    each test's does, and a task left pending on a closed loop is torn down badly)."""
    found = _listeners.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found.close()

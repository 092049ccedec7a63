"""Frames to every open tab of a conversation, through the channel layer's groups.

One measured exception to "public APIs of libraries only" lives here: with RedisPubSubChannelLayer we
publish to its group channel (`{prefix}__group__{group}`, with its own serializer) ourselves instead of
calling `group_send`. The layer publishes every message of the process one at a time behind one
asyncio.Lock; at 200 streaming replies (a few thousand frames a second) that lock is the queue every
reply waits in, and one round trip per frame is most of what streaming costs the process. Publishing
directly (4e26e76), then many publishes to one script call (`Publisher`, dd7cae3), were measured with
the 200-stream phase of `bench/relay.py` when they came in. tests/chat/test_broadcast.py fails loudly if
the library changes its channel names or serialisation; any other channel layer goes through
`group_send`.

Redis is a relay, not the record: a reply's text lives in the runner until its row is written, so a
publish that fails is logged (once per outage, `relay_lost`) and retried later, never allowed to end a
reply (`publish_patiently`, chat.deltas).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import RedisError

from chat import background, frames
from orweb.aio import one_per_loop
from orweb.redis_clients import async_client

log = logging.getLogger(__name__)

PUBSUB_LAYER = "channels_redis.pubsub.RedisPubSubChannelLayer"
# What an unreachable or hung Redis raises (asyncio's TimeoutError is an OSError).
RELAY_ERRORS = (RedisError, OSError)
RELAY_TIMEOUT = 10.0  # a publish Redis hasn't answered by then counts as failed (and is retried)
RETRY_FIRST = 0.2
RETRY_MAX = 2.0
RELAY_PATIENCE = 120.0  # how long a finished reply's last frames keep being retried


class _Outage:
    """Whether this process last found Redis unreachable: logged when that starts and when it ends, not
    once per publish (200 replies would log 200 times a second)."""

    lost = False


def relay_lost(exc: BaseException) -> None:
    """Note a failed Redis call of a reply (logged at the start of an outage only)."""
    if not _Outage.lost:
        _Outage.lost = True
        log.warning("Redis is unreachable; replies keep their text and retry the relay: %r", exc)


def relay_back() -> None:
    """Note a Redis call that worked (logs the end of an outage)."""
    if _Outage.lost:
        _Outage.lost = False
        log.warning("Redis is reachable again; relaying")


def pubsub_channel(group: str) -> str | None:
    """The Redis pub/sub channel the channel layer delivers `group` from, if we can publish to it ourselves:
    the layer is RedisPubSubChannelLayer and its one host is our Redis. Else None (use group_send)."""
    config = settings.CHANNEL_LAYERS["default"]
    options = config.get("CONFIG", {})
    if config["BACKEND"] != PUBSUB_LAYER or options.get("hosts") != [settings.REDIS_URL]:
        return None
    return f"{options.get('prefix', 'asgi')}__group__{group}"


async def group_publish(
    group: str, message: dict[str, Any], *, append: tuple[str, str] | None = None, expire: int | None = None
) -> None:
    """What `group_send` does, without its lock, batched with what every other reply of the process
    publishes meanwhile (`Publisher`).

    `append` = (list key, item) is pushed before the publish, in the same script call (Redis runs it in
    order), so whoever hears the message can find it in the list; `expire` then sets that list's time to
    live in seconds."""
    layer = get_channel_layer()
    channel = pubsub_channel(group)
    if channel is None:
        if append is not None:
            await async_client().rpush(*append)
            if expire is not None:
                await async_client().expire(append[0], expire)
        await layer.group_send(group, message)
        return
    await publisher().send(channel, layer.serialize(message), append, expire)


async def publish(conversation_id: int, frame: dict[str, Any]) -> None:
    """Send a prepared frame to every tab of a conversation."""
    async with asyncio.timeout(RELAY_TIMEOUT):
        await group_publish(frames.conversation_group(conversation_id), {"type": "chat.frame", "frame": frame})


async def try_publish(conversation_id: int, frame: dict[str, Any]) -> bool:
    """Publish once; if Redis can't take it, note that and carry on (for frames a later one supersedes)."""
    try:
        await publish(conversation_id, frame)
    except RELAY_ERRORS as exc:
        relay_lost(exc)
        return False
    relay_back()
    return True


async def publish_patiently(conversation_id: int, frames_: list[dict[str, Any]]) -> bool:
    """Publish frames in order, retrying each while Redis is unreachable, for up to RELAY_PATIENCE seconds
    in all (a finished reply's "done" must reach the tabs once the relay is back); False if given up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RELAY_PATIENCE
    delay = RETRY_FIRST
    for frame in frames_:
        while not await try_publish(conversation_id, frame):
            if loop.time() + delay > deadline:
                log.error("gave up relaying a %s frame to conversation %s", frame["type"], conversation_id)
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
    return True


# One call per batch: for each publish, append to its list (when it has one, and set that list's time to
# live when asked), then PUBLISH; in order. Sent as a pipeline of RPUSH/PUBLISH commands instead, the
# replies alone (two integers a frame, parsed in Python) cost the process more than building the frames.
_PUBLISH_BATCH = """
for i = 1, #ARGV, 5 do
    local key = ARGV[i + 2]
    if key ~= "" then
        redis.call("RPUSH", key, ARGV[i + 3])
        if ARGV[i + 4] ~= "" then
            redis.call("EXPIRE", key, ARGV[i + 4])
        end
    end
    redis.call("PUBLISH", ARGV[i], ARGV[i + 1])
end
return #ARGV / 5
"""


class Publisher:
    """Sends the publishes of every reply of this process to Redis, many to a round trip.

    At 200 replies a frame each every 30-60 ms, one round trip per frame is most of what streaming costs
    the process. Here a publish waits in a queue; one task sends whatever has queued up as one script
    call (`_PUBLISH_BATCH`), then the next batch. One batch at a time keeps them in order, and a send
    returns when its batch has gone out, so a reply's frames stay in order too.
    """

    def __init__(self) -> None:
        self._queue: list[tuple[str, bytes, tuple[str, str] | None, int | None, asyncio.Future[None]]] = []
        self._sender: asyncio.Task | None = None
        self._script: Any = None

    async def send(
        self, channel: str, payload: bytes, append: tuple[str, str] | None = None, expire: int | None = None
    ) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((channel, payload, append, expire, done))
        if self._sender is None or self._sender.done():
            # Checked by the task itself, not a flag: a sender that ended any way at all (even cancelled
            # before it ran) is replaced, so publishing can never stay stuck after a failure.
            self._sender = background.spawn(self._send_all())
        await done

    async def _send_all(self) -> None:
        if self._script is None:
            self._script = async_client().register_script(_PUBLISH_BATCH)
        while self._queue:
            batch, self._queue = self._queue, []
            args: list[Any] = []
            for channel, payload, append, expire, _ in batch:
                key, item = append if append is not None else ("", "")
                args += [channel, payload, key, item, "" if expire is None else expire]
            try:
                await self._script(args=args)
            except BaseException as exc:
                # Each send of the batch hears why (a Redis outage: its caller retries); a cancellation
                # still ends the sender, which the next send replaces.
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception) else RedisError("publisher stopped"))
                if not isinstance(exc, Exception):
                    raise
            else:
                for *_, done in batch:
                    if not done.done():
                        done.set_result(None)


_publishers: dict[int, Publisher] = {}


def publisher() -> Publisher:
    """The publisher of this event loop."""
    return one_per_loop(_publishers, Publisher)

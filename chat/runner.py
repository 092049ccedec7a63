"""The stream runner: one asyncio task per assistant reply, owned by the message, not by a websocket.

Closing a tab doesn't stop it; `stop()` does (from any process, through one Redis pub/sub channel), and
the gateway then settles what was generated. While streaming it

* publishes numbered deltas to the conversation's group, coalesced to one frame per COALESCE seconds
  (spaced further apart when the process streams more than FRAMES_PER_SECOND allows, see
  `frame_interval`);
* appends each delta to the Redis list `chat:msg:<id>:deltas` *before* publishing it, so a client that
  joins the group and then reads the list misses nothing (it drops seqs it already has);
* checkpoints the row (content + seq, always consistent) about once a second, and finalises it at the end;
* holds a lease (`chat:msg:<id>:runner`, refreshed while it runs) so chat.sweep can tell a reply whose
  process died from one that is still streaming.

Latency: before the upstream call it does only what the call needs (claim the row, read the turns before
it), in one database hop; the "message" frames are announced concurrently and the first delta waits for
them, so a tab always hears of a message before its text. Database work runs on the loop's thread pool,
never on the one thread `database_sync_to_async` shares by default, where 200 replies would queue.

With tools on, it runs the call → tool → call loop (at most MAX_STEPS upstream calls, each metered).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from psycopg.types.json import Jsonb
from redis.exceptions import RedisError

from billing import spend
from chat import conversations, frames, tools, uploads
from chat.models import Attachment, Conversation, Message
from gateway import metered
from gateway.types import CallResult, ChatRequest
from openrouter.errors import ConnectionFailed, IdleTimeout, IncompleteStream
from openrouter.events import Started, StreamError, TextDelta, ToolCallDelta
from orweb import sql
from orweb.errors import BudgetExceeded, GatewayError, RateLimitExceeded

log = logging.getLogger(__name__)
T = TypeVar("T")

COALESCE = 0.03
FRAMES_PER_SECOND = 3300  # what one process relays before its replies' frames space out (bench/relay.py)
MAX_INTERVAL = 0.1
CHECKPOINT_EVERY = 1.0
DELTAS_TTL = 3600
LEASE_TTL = 150
LEASE_REFRESH = 30
MAX_STEPS = 5
REDIS_CONNECTIONS = 64  # shared by every runner and socket of the process; callers wait for a free one
FINAL = (Message.Status.COMPLETE, Message.Status.STOPPED, Message.Status.ERROR, Message.Status.INCOMPLETE)
_INCOMPLETE_ERRORS = (IncompleteStream, IdleTimeout, ConnectionFailed)

_running: dict[int, asyncio.Task] = {}
_background: set[asyncio.Task] = set()
_redis_clients: dict[int, aioredis.Redis] = {}


def deltas_key(message_id: int) -> str:
    return f"chat:msg:{message_id}:deltas"


def lease_key(message_id: int) -> str:
    return f"chat:msg:{message_id}:runner"


def db(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """Run a database function on the loop's thread pool, not on the one thread `database_sync_to_async`
    shares by default: calls of different replies and sockets then run side by side instead of queueing.

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


def _one_per_loop(instances: dict[int, T], make: Callable[[], T]) -> T:
    """This event loop's instance, made on first use: asyncio objects can't cross loops, and tests run
    one loop each (an earlier loop's instance is dropped)."""
    loop_id = id(asyncio.get_running_loop())
    found = instances.get(loop_id)
    if found is None:
        instances.clear()
        found = instances[loop_id] = make()
    return found


def redis_client() -> aioredis.Redis:
    """This loop's Redis client, shared by every runner and socket of the process."""
    return _one_per_loop(_redis_clients, _new_redis_client)


def _new_redis_client() -> aioredis.Redis:
    # No client name/version: redis-py would otherwise read its package metadata from disk for every
    # new connection and send CLIENT SETINFO, which under a burst of replies costs the loop real time.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=REDIS_CONNECTIONS,
        timeout=10,
        decode_responses=True,
        driver_info=None,
    )
    return aioredis.Redis(connection_pool=pool)


async def deltas_after(message_id: int, after_seq: int) -> list[tuple[int, str]]:
    """The stored deltas of a message with seq > after_seq, in order."""
    rows = await redis_client().lrange(deltas_key(message_id), 0, -1)
    found = []
    for row in rows:
        seq, _, text = row.partition("\t")
        if int(seq) > after_seq:
            found.append((int(seq), text))
    return found


def running(message_id: int) -> asyncio.Task | None:
    """The task streaming `message_id` in this process, if any."""
    return _running.get(message_id)


async def drain() -> None:
    """Wait until every reply and background job (titles, publishing) of this process has finished."""
    while pending := [t for t in (*_running.values(), *_background) if not t.done()]:
        await asyncio.wait(pending)


def _spawn(coro: Any) -> asyncio.Task:
    task = asyncio.create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def prepare(message: Message, conversation: Conversation, user: Any) -> Context | None:
    """Claim a pending reply (pending → streaming with a conditional update: of several processes, exactly
    one gets it) and read what its upstream call needs; None if someone else has it. Synchronous: callers
    fold it into the database hop they are already in."""
    claimed = Message.objects.filter(pk=message.pk, status=Message.Status.PENDING).update(
        status=Message.Status.STREAMING
    )
    if claimed != 1:
        return None
    message.status = Message.Status.STREAMING
    return context(message, conversation, user)


@db
def _prepare_by_id(message_id: int) -> Context | None:
    message = Message.objects.select_related("conversation__user").filter(pk=message_id).first()
    if message is None:
        return None
    return prepare(message, message.conversation, message.conversation.user)


def launch(ctx: Context, after: asyncio.Future | None = None) -> None:
    """Run a prepared reply in this process. Its first delta waits for `after` (the announcement of the
    message), however that ends."""
    message_id = ctx.message.pk
    task = asyncio.create_task(_run(ctx, after), name=f"chat-runner-{message_id}")
    _running[message_id] = task

    def done(_: asyncio.Task) -> None:
        _running.pop(message_id, None)
        if ctx.admission is not None:
            # Stopped before it ever ran: `_run` had no chance to settle the admission itself.
            admission, ctx.admission = ctx.admission, None
            _spawn(metered.abandon(admission))

    task.add_done_callback(done)


async def start(message_id: int, after: asyncio.Future | None = None) -> bool:
    """Start streaming a pending assistant message in this process; False if someone else has it."""
    ctx = await _prepare_by_id(message_id)
    if ctx is None:
        return False
    launch(ctx, after)
    return True


@db
def _pending_ids(conversation_id: int) -> list[int]:
    return list(
        Message.objects.filter(
            conversation_id=conversation_id, role=Message.Role.ASSISTANT, status=Message.Status.PENDING
        ).values_list("id", flat=True)
    )


async def start_pending(conversation_id: int) -> list[int]:
    """Start every reply of a conversation still waiting for a runner (created over HTTP, e.g. compare)."""
    return [mid for mid in await _pending_ids(conversation_id) if await start(mid)]


def stop_channel() -> str:
    """The Redis pub/sub channel Stop requests travel on, named like the channel layer's own channels
    (its prefix keeps deployments and test runs sharing a Redis server apart)."""
    return f"{settings.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('prefix', 'asgi')}__chat_stop"


def _cancel(message_id: int) -> bool:
    task = _running.get(message_id)
    if task is None:
        return False
    if not task.cancelling():
        task.cancel()
    return True


async def stop(message_id: int) -> None:
    """Stop a reply wherever it runs: cancel it here, or ask every process (one has it)."""
    if not _cancel(message_id):
        await redis_client().publish(stop_channel(), str(message_id))


class StopListener:
    """This process's one subscription to `stop_channel()`, cancelling the replies it runs when asked.

    One for the process, not one per reply: subscribing and unsubscribing every reply cost two Redis
    round trips and a task each, all at once when many replies start or end together. It is subscribed
    before the first reply's upstream call and stays subscribed; if Redis drops it, it subscribes again.
    """

    def __init__(self) -> None:
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._listen(), name="chat-stop-listener")

    async def ready(self, timeout: float = 2.0) -> None:
        """Wait until subscribed (at most `timeout`: a reply still runs, and stops here, without it)."""
        if not self._ready.done():
            await asyncio.wait([self._ready], timeout=timeout)

    async def _listen(self) -> None:
        while True:
            pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(stop_channel())
                if not self._ready.done():
                    self._ready.set_result(None)
                async for message in pubsub.listen():
                    if str(message["data"]).isdigit():
                        _cancel(int(message["data"]))
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


_stop_listeners: dict[int, StopListener] = {}


async def stop_listening() -> None:
    """Unsubscribe this event loop's stop listener, before the loop ends (a server's loop never does;
    each test's does, and a task left pending on a closed loop is torn down badly)."""
    listener = _stop_listeners.pop(id(asyncio.get_running_loop()), None)
    if listener is not None:
        listener._task.cancel()
        await asyncio.wait([listener._task])


def stop_listener() -> StopListener:
    """The stop listener of this event loop."""
    return _one_per_loop(_stop_listeners, StopListener)


PUBSUB_LAYER = "channels_redis.pubsub.RedisPubSubChannelLayer"


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
    """What `group_send` does, without its lock: RedisPubSubChannelLayer publishes every message of the
    process one at a time behind one asyncio.Lock, which at a few thousand frames a second becomes the
    queue every reply waits in. We publish the same bytes to the same channel ourselves, batched with
    what every other reply of the process publishes meanwhile (`Publisher`).

    `append` = (list key, item) is pushed before the publish, in the same script call (Redis runs it in
    order), so whoever hears the message can find it in the list; `expire` then sets that list's time to
    live in seconds."""
    layer = get_channel_layer()
    channel = pubsub_channel(group)
    if channel is None:
        if append is not None:
            await redis_client().rpush(*append)
            if expire is not None:
                await redis_client().expire(append[0], expire)
        await layer.group_send(group, message)
        return
    await publisher().send(channel, layer.serialize(message), append, expire)


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
        self._sending = False
        self._script: Any = None

    async def send(
        self, channel: str, payload: bytes, append: tuple[str, str] | None = None, expire: int | None = None
    ) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((channel, payload, append, expire, done))
        if not self._sending:
            self._sending = True
            _spawn(self._send_all())
        await done

    async def _send_all(self) -> None:
        if self._script is None:
            self._script = redis_client().register_script(_PUBLISH_BATCH)
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                args: list[Any] = []
                for channel, payload, append, expire, _ in batch:
                    key, item = append if append is not None else ("", "")
                    args += [channel, payload, key, item, "" if expire is None else expire]
                try:
                    await self._script(args=args)
                except Exception as exc:
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for *_, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._sending = False


_publishers: dict[int, Publisher] = {}


def publisher() -> Publisher:
    """The publisher of this event loop."""
    return _one_per_loop(_publishers, Publisher)


async def publish(conversation_id: int, frame: dict[str, Any]) -> None:
    """Send a prepared frame to every tab of a conversation."""
    await group_publish(frames.conversation_group(conversation_id), {"type": "chat.frame", "frame": frame})


def frame_interval() -> float:
    """Seconds between two frames of one reply: COALESCE, or longer while this process streams so many
    replies that COALESCE would exceed FRAMES_PER_SECOND in all (at most MAX_INTERVAL). Deltas then carry
    more text each instead of queueing behind one another: every frame costs the event loop the same
    whatever its size, and a saturated loop delays every reply's frames at once."""
    return min(MAX_INTERVAL, max(COALESCE, len(_running) / FRAMES_PER_SECOND))


class DeltaPump:
    """Coalesces text pieces into numbered deltas: the first goes out at once, then at most one per
    `frame_interval()`.

    `text` and `seq` always describe the same published prefix, which is what a checkpoint saves.
    """

    def __init__(
        self, message_id: int, conversation_id: int, text: str, seq: int, after: asyncio.Future | None = None
    ) -> None:
        self.message_id = message_id
        self.group = frames.conversation_group(conversation_id)
        self._key = deltas_key(message_id)
        self.text = text
        self.seq = seq
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._after = after
        self._expiry_set = False  # set once: a reply streams for minutes, not for DELTAS_TTL
        self._task = asyncio.create_task(self._loop())

    def feed(self, piece: str) -> None:
        if piece:
            self._pending.append(piece)
            self._wake.set()

    async def _flush(self) -> None:
        if not self._pending:
            return
        piece = "".join(self._pending)
        self._pending.clear()
        self.seq += 1
        self.text += piece
        seq = self.seq
        await group_publish(
            self.group,
            {"type": "chat.delta", "message_id": self.message_id, "seq": seq, "text": piece},
            append=(self._key, f"{seq}\t{piece}"),
            expire=None if self._expiry_set else DELTAS_TTL,
        )
        self._expiry_set = True

    async def _loop(self) -> None:
        if self._after is not None:
            await asyncio.wait([self._after])
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            flushed_at = loop.time()
            await self._flush()
            if self._closed:
                await self._flush()
                return
            self.checkpoint()
            # The interval runs from the flush, not from when its publish returned.
            await asyncio.sleep(max(0.0, flushed_at + frame_interval() - loop.time()))

    def checkpoint(self, **fields: Any) -> None:
        """Have content + seq (and any extra fields) saved with the next batch (chat.runner.Checkpoints)."""
        checkpoints().put(self.message_id, self.text, self.seq, fields)

    async def close(self) -> None:
        """Publish what is left and settle its checkpoints; safe to call while being cancelled."""
        self._closed = True
        self._wake.set()
        await asyncio.shield(self._task)
        await asyncio.shield(checkpoints().settle(self.message_id))


class Checkpoints:
    """The checkpoints of every reply of this process, saved together about once a second in one database
    hop (200 replies streaming = one hop a second, not 200). A row's content and seq are always saved
    together; extra fields (tool calls) ride along with the next batch."""

    def __init__(self) -> None:
        self._dirty: dict[int, tuple[str, int, dict[str, Any]]] = {}
        self._saving: dict[int, asyncio.Task] = {}
        self._task: asyncio.Task | None = None

    def put(self, message_id: int, text: str, seq: int, fields: dict[str, Any]) -> None:
        previous = self._dirty.get(message_id)
        self._dirty[message_id] = (text, seq, {**previous[2], **fields} if previous else fields)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while self._dirty:
            await asyncio.sleep(CHECKPOINT_EVERY)
            batch, self._dirty = self._dirty, {}
            save = asyncio.ensure_future(db(_save_checkpoints)(batch))
            self._saving.update(dict.fromkeys(batch, save))
            try:
                await save
            except Exception:
                log.exception("could not checkpoint %s replies", len(batch))
            finally:
                for message_id in batch:
                    if self._saving.get(message_id) is save:
                        del self._saving[message_id]

    async def settle(self, message_id: int) -> None:
        """Drop the reply's unsaved checkpoint and wait for one being saved: after this, no checkpoint can
        overwrite what the caller writes (the final row)."""
        self._dirty.pop(message_id, None)
        saving = self._saving.get(message_id)
        if saving is not None:
            await asyncio.wait([saving])
        if not self._dirty and not self._saving and self._task is not None:
            self._task.cancel()


# One statement for every reply's checkpoint: the ORM's bulk_update builds a CASE per row and field,
# ~30 ms of Python for 200 replies, held on the GIL while the loop waits to relay their deltas.
_CHECKPOINT = """
UPDATE chat_message m SET content = v.content, seq = v.seq
FROM unnest(%(ids)s::bigint[], %(contents)s::text[], %(seqs)s::integer[]) AS v(id, content, seq)
WHERE m.id = v.id
RETURNING m.id
"""


def _save_checkpoints(batch: dict[int, tuple[str, int, dict[str, Any]]]) -> None:
    plain = [(mid, text, seq) for mid, (text, seq, fields) in batch.items() if not fields]
    if plain:
        ids, contents, seqs = map(list, zip(*plain, strict=True))
        sql.fetch(_CHECKPOINT, {"ids": ids, "contents": contents, "seqs": seqs})
    for mid, (text, seq, fields) in batch.items():
        if fields:
            Message.objects.filter(pk=mid).update(content=text, seq=seq, **fields)


_checkpoints: dict[int, Checkpoints] = {}


def checkpoints() -> Checkpoints:
    """This event loop's Checkpoints."""
    return _one_per_loop(_checkpoints, Checkpoints)


@dataclass
class Context:
    message: Message
    conversation: Conversation
    user: Any
    history: list[dict[str, Any]]
    has_images: bool
    # The first upstream call, admitted (or refused) ahead of time by `admit_first_call`.
    admission: Any = None
    refused: GatewayError | None = None


def admit_first_call(ctx: Context) -> None:
    """Admit the reply's first upstream call now, in the caller's database hop (synchronous): the runner
    then starts the call at once. A refusal is kept for the runner to show on the message. Replies with
    images are left to the runner, which checks the model takes images before anything is held."""
    if ctx.has_images:
        return
    try:
        ctx.admission = metered.admit_stream(ctx.user, _request(ctx, ctx.history), source="chat")
    except GatewayError as exc:
        ctx.refused = exc


@dataclass
class _Totals:
    """What all steps of one reply add up to."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    ttft_ms: int | None = None
    generation_ms: int = 0
    served_model: str = ""
    provider: str = ""
    skipped: list[list[str]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: CallResult) -> None:
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.cost += result.cost
        if self.ttft_ms is None:
            self.ttft_ms = result.ttft_ms
        self.generation_ms += max(result.latency_ms - (result.ttft_ms or 0), 0)
        self.served_model = result.served_model or self.served_model
        self.provider = result.provider or self.provider
        for model, why in result.skipped:
            if [model, why] not in self.skipped:
                self.skipped.append([model, why])

    @property
    def tokens_per_second(self) -> Decimal | None:
        if not self.completion_tokens or self.generation_ms <= 0:
            return None
        return (Decimal(self.completion_tokens) * 1000 / self.generation_ms).quantize(Decimal("0.01"))


def _user_content(message: Message, attachments: dict[int, Attachment]) -> str | list[dict[str, Any]]:
    if not message.attachment_ids:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [
        {"type": "image_url", "image_url": {"url": uploads.data_url(attachments[i])}} for i in message.attachment_ids
    ]
    return parts


def _tool_call_turn(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant turn that asked for `calls` (each with id, name, arguments), as the API takes it back."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }


def _assistant_turns(message: Message) -> list[dict[str, Any]]:
    """An earlier reply as the model saw it: its tool steps (call + results), then its text."""
    turns: list[dict[str, Any]] = []
    steps: dict[int, list[dict[str, Any]]] = {}
    for call in message.tool_calls:
        steps.setdefault(call["step"], []).append(call)
    for calls in steps.values():
        turns.append(_tool_call_turn(calls))
        turns += [{"role": "tool", "tool_call_id": c["id"], "content": c["result"]} for c in calls]
    if message.content:
        turns.append({"role": "assistant", "content": message.content})
    return turns


def _turns_before(message: Message) -> list[Message]:
    """The messages `message` answers or continues, root first, with their `attachment_ids`: one query."""
    return conversations.path_to(conversations.messages_by_id(message.conversation_id), message.parent_id)


def context(message: Message, conversation: Conversation, user: Any, turns: list[Message] | None = None) -> Context:
    """What the upstream call of `message` needs, for a reply this process has claimed. `turns` are the
    messages before it (root first, with `attachment_ids`), if the caller has just read them; the
    attachments of the user turns are then the only read, and only if there are any."""
    if turns is None:
        turns = _turns_before(message)
    attachment_ids = [i for turn in turns if turn.role == Message.Role.USER for i in turn.attachment_ids]
    attachments = Attachment.objects.in_bulk(attachment_ids) if attachment_ids else {}
    history: list[dict[str, Any]] = []
    if conversation.system_prompt:
        history.append({"role": "system", "content": conversation.system_prompt})
    has_images = False
    for turn in turns:
        if turn.role == Message.Role.USER:
            content = _user_content(turn, attachments)
            has_images = has_images or isinstance(content, list)
            history.append({"role": "user", "content": content})
        elif turn.role == Message.Role.ASSISTANT:
            history += _assistant_turns(turn)
    if message.content:
        history.append({"role": "assistant", "content": message.content})
    return Context(message, conversation, user, history, has_images)


def _request(ctx: Context, messages: list[dict[str, Any]]) -> ChatRequest:
    conversation = ctx.conversation
    params: dict[str, Any] = {}
    if conversation.temperature is not None:
        params["temperature"] = float(conversation.temperature)
    if conversation.tools:
        params["tools"] = tools.schemas(conversation.tools)
    return ChatRequest(
        model=conversation.model,
        messages=messages,
        max_tokens=conversation.max_tokens,
        fallback_models=list(conversation.fallback_models),
        params=params,
    )


@dataclass
class _Outcome:
    status: str = Message.Status.COMPLETE
    error: str = ""
    error_code: str = ""


def _refusal(exc: GatewayError) -> _Outcome:
    if isinstance(exc, BudgetExceeded):
        remaining = format(exc.remaining.quantize(Decimal("0.0001")), "f")
        return _Outcome(
            Message.Status.ERROR,
            f"Not sent: the {exc.budget} has ${remaining} left, not enough for this message.",
            "budget",
        )
    if isinstance(exc, RateLimitExceeded):
        return _Outcome(
            Message.Status.ERROR,
            f"Not sent: too many requests; try again in {max(round(exc.retry_after), 1)} s.",
            "rate_limited",
        )
    return _Outcome(Message.Status.ERROR, exc.message, exc.code)


async def _step(
    ctx: Context, pump: DeltaPump, messages: list[dict[str, Any]], totals: _Totals
) -> tuple[_Outcome, list[dict[str, Any]]]:
    """One metered upstream call; returns how it ended and the tool calls it asked for."""
    calls: dict[int, dict[str, Any]] = {}
    outcome = _Outcome()
    call = None
    admission, ctx.admission = ctx.admission, None
    if ctx.refused is not None:
        refused, ctx.refused = ctx.refused, None
        return _refusal(refused), []
    try:
        async with metered.stream(ctx.user, _request(ctx, messages), source="chat", admission=admission) as call:
            async for event in call:
                if isinstance(event, TextDelta):
                    pump.feed(event.text)
                elif isinstance(event, ToolCallDelta):
                    entry = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] = event.id or entry["id"]
                    entry["name"] = event.name or entry["name"]
                    entry["arguments"] += event.arguments
                elif isinstance(event, Started) and not totals.served_model:
                    totals.served_model, totals.provider = event.model, event.provider or ""
                elif isinstance(event, StreamError):
                    incomplete = isinstance(event.error, _INCOMPLETE_ERRORS)
                    outcome = _Outcome(
                        Message.Status.INCOMPLETE if incomplete else Message.Status.ERROR,
                        f"The reply broke off: {event.error.message}" if incomplete else event.error.message,
                        "incomplete" if incomplete else "upstream_error",
                    )
    except GatewayError as exc:
        return _refusal(exc), []
    finally:
        result = getattr(call, "result", None)
        if result is not None:
            totals.add(result)
    if outcome.status == Message.Status.COMPLETE and result is not None and result.status != "ok":
        outcome = _Outcome(
            Message.Status.ERROR if result.status == "error" else Message.Status.INCOMPLETE,
            result.error or "The reply did not finish.",
            result.status,
        )
    return outcome, [calls[i] for i in sorted(calls)] if outcome.status == Message.Status.COMPLETE else []


async def _run_tools(
    ctx: Context, pump: DeltaPump, step: int, calls: list[dict[str, Any]], totals: _Totals
) -> list[dict[str, Any]]:
    """Run the calls of one step, show each in the transcript; returns the turns to send next."""
    turns = [_tool_call_turn(calls)]
    for call in calls:
        result = await db(tools.run_tool)(call["name"], call["arguments"])
        shown = {"step": step, **call, "result": result}
        totals.tool_calls.append(shown)
        turns.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        await publish(ctx.conversation.pk, {"type": "tool", "message_id": ctx.message.pk, "call": shown})
    pump.checkpoint(tool_calls=list(totals.tool_calls))
    return turns


async def _stream_reply(ctx: Context, pump: DeltaPump, totals: _Totals) -> _Outcome:
    messages = list(ctx.history)
    for step in range(MAX_STEPS):
        outcome, calls = await _step(ctx, pump, messages, totals)
        if outcome.status != Message.Status.COMPLETE or not calls:
            return outcome
        if step == MAX_STEPS - 1:
            return _Outcome(Message.Status.INCOMPLETE, f"Stopped after {MAX_STEPS} tool steps.", "too_many_steps")
        messages += await _run_tools(ctx, pump, step, calls, totals)
    return _Outcome()


@db
def _image_refusal(model: str) -> str | None:
    return conversations.image_refusal(model)


@cache
def _finish_statement() -> str:
    """The final row of a reply and its conversation's new total, written and read back in one statement
    (the ORM took three queries and ~2 ms of Python per reply, all of them when 200 replies end at once)."""
    return f"""
WITH done AS (
    UPDATE {sql.table(Message)} SET
        content = %(content)s, seq = %(seq)s, status = %(status)s, error = %(error)s,
        served_model = %(served_model)s, provider = %(provider)s, skipped = %(skipped)s,
        prompt_tokens = prompt_tokens + %(prompt_tokens)s,
        completion_tokens = completion_tokens + %(completion_tokens)s,
        cost = cost + %(cost)s, ttft_ms = %(ttft_ms)s, tokens_per_second = %(tokens_per_second)s,
        tool_calls = coalesce(%(tool_calls)s::jsonb, tool_calls)
    WHERE id = %(message)s
    RETURNING *
),
total AS (
    UPDATE {sql.table(Conversation)} c SET total_cost = c.total_cost + %(cost)s
    FROM done WHERE c.id = %(conversation)s
    RETURNING c.*
)
SELECT {sql.json_row(Message, "d")}, {sql.json_row(Conversation, "t")} FROM done d, total t
"""


@db
def _finish(
    message_id: int,
    conversation_id: int,
    pump: DeltaPump,
    totals: _Totals,
    outcome: _Outcome,
    user: Any,
) -> tuple[dict[str, Any], bool, dict[str, Any] | None] | None:
    """Finalise the row and the conversation's total, in one hop; returns the done frame, whether to title
    the conversation, and the user's budget frame (None if it couldn't be read)."""
    found = sql.fetch(
        _finish_statement(),
        {
            "message": message_id,
            "conversation": conversation_id,
            "content": pump.text,
            "seq": pump.seq,
            "status": outcome.status,
            "error": outcome.error,
            "served_model": totals.served_model,
            "provider": totals.provider,
            "skipped": Jsonb(totals.skipped),
            "prompt_tokens": totals.prompt_tokens,
            "completion_tokens": totals.completion_tokens,
            "cost": totals.cost,
            "ttft_ms": totals.ttft_ms,
            "tokens_per_second": totals.tokens_per_second,
            "tool_calls": Jsonb(totals.tool_calls) if totals.tool_calls else None,
        },
    )
    if not found:
        return None
    [(row, conversation_row)] = found
    message = sql.instance(Message, row)
    message.conversation = conversation = sql.instance(Conversation, conversation_row)
    wants_title = (
        not conversation.title and conversation.compare_group is None and outcome.status == Message.Status.COMPLETE
    )
    try:
        budget = _budget_frame(user)
    except Exception:
        log.exception("could not read the budget after message %s", message_id)
        budget = None
    return frames.done_frame(message, conversation.total_cost), wants_title, budget


def _budget_frame(user: Any) -> dict[str, Any]:
    summary = spend.spend_summary(user)
    return {
        "type": "budget",
        "spent": str(summary.spent),
        "remaining": None if summary.remaining is None else str(summary.remaining),
        "budget": summary.budget,
    }


async def _keep_lease(message_id: int) -> None:
    """Tell chat.sweep this reply has a live runner, until cancelled (then let go of the lease)."""
    client = redis_client()
    try:
        while True:
            await client.set(lease_key(message_id), "1", ex=LEASE_TTL)
            await asyncio.sleep(LEASE_REFRESH)
    finally:
        await asyncio.shield(client.delete(lease_key(message_id)))


async def _run(ctx: Context, after: asyncio.Future | None = None) -> None:
    message_id, conversation_id = ctx.message.pk, ctx.conversation.pk
    pump = DeltaPump(message_id, conversation_id, ctx.message.content, ctx.message.seq, after)
    totals = _Totals()
    lease = _spawn(_keep_lease(message_id))
    outcome = _Outcome()
    try:
        await stop_listener().ready()
        refusal = await _image_refusal(ctx.conversation.model) if ctx.has_images else None
        outcome = (
            _Outcome(Message.Status.ERROR, refusal, "not_allowed")
            if refusal
            else await _stream_reply(ctx, pump, totals)
        )
    except asyncio.CancelledError:
        outcome = _Outcome(Message.Status.STOPPED)
    except Exception:
        log.exception("chat runner for message %s failed", message_id)
        outcome = _Outcome(
            Message.Status.ERROR, "Something went wrong on our side; the reply was not finished.", "internal"
        )
    finally:
        if ctx.admission is not None:
            # Admitted with the send, stopped before the call: nothing was spent; settle it as such.
            admission, ctx.admission = ctx.admission, None
            await metered.abandon(admission)
    try:
        await pump.close()
    except Exception:
        log.exception("could not publish the tail of message %s", message_id)
        outcome = _Outcome(Message.Status.INCOMPLETE, "The reply could not be delivered in full.", "internal")
    try:
        finished = await _finish(message_id, conversation_id, pump, totals, outcome, ctx.user)
    finally:
        lease.cancel()
    if finished is None:
        return
    done, wants_title, budget = finished
    if outcome.error_code in ("budget", "rate_limited", "not_allowed"):
        await publish(conversation_id, frames.error_frame(outcome.error_code, outcome.error, message_id=message_id))
    await publish(conversation_id, done)
    if budget is not None:
        await publish(conversation_id, budget)
    if wants_title:
        from chat.titles import title_conversation

        _spawn(title_conversation(conversation_id))

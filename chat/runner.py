"""The stream runner: one asyncio task per assistant reply, owned by the message, not by a websocket.

A reply's life: claimed (`prepare`), run (`launch`/`start`), stopped (`stop`, from any process: see
chat.stopping), streamed through the gateway (the call → tool → call loop, at most MAX_STEPS metered
calls), then written once (`_finish`) and announced. Closing a tab doesn't stop it. While streaming, its
text goes out as paced, numbered deltas (chat.deltas), its row is checkpointed about once a second
(chat.checkpoints), and it holds a lease (chat.lease) so chat.sweep can tell a reply whose process died
from one that is still streaming.

Redis is a relay, not the record: nothing Redis does ends a reply or shortens it. The whole text stays in
the runner until the final row holds it; that write is retried while the database is unreachable
(`_write_final`), and the frames that announce it are retried until the relay is back.

Latency: before the upstream call it does only what the call needs (claim the row, read the turns before
it), in one database hop; the "message" frames are announced concurrently and the first delta waits for
them, so a tab always hears of a message before its text.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from typing import Any

from django.db import InterfaceError, OperationalError
from django.db.models.functions import Now
from psycopg.types.json import Jsonb

from billing import spend
from chat import background, conversations, frames, lease, prompt, refusals, reply_extras, stopping, tools
from chat.broadcast import publish_patiently, try_publish
from chat.checkpoints import checkpoints
from chat.deltas import DeltaPump
from chat.models import Conversation, Message
from chat.outcomes import Outcome, Totals, refusal
from chat.prompt import Context
from chat.sweep import ORPHAN_ERROR
from chat.thinking import ThinkingRelay
from chat.titles import title_conversation
from gateway import metered
from openrouter.errors import ConnectionFailed, IdleTimeout, IncompleteStream
from openrouter.events import (
    Annotations,
    ImageOut,
    ReasoningDelta,
    Started,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from orweb import metrics, sql
from orweb.aio import db
from orweb.errors import GatewayError
from orweb.text import pg_json, pg_text

log = logging.getLogger(__name__)

MAX_STEPS = 5
FINAL_RETRY_FIRST = 0.5
FINAL_RETRY_MAX = 10.0
FINAL_PATIENCE = 600.0  # then the sweep finishes the reply from its checkpoint and the stored deltas
_INCOMPLETE_ERRORS = (IncompleteStream, IdleTimeout, ConnectionFailed)

_running: dict[int, asyncio.Task] = {}


def busy() -> bool:
    """Whether a reply or a background job (titles, publishing) of this process is still running (safe to
    ask from another thread, as the browser tests do)."""
    return any(not task.done() for task in list(_running.values())) or bool(background.pending())


async def drain() -> None:
    """Wait until every reply and background job of this process has finished."""
    while pending := [t for t in _running.values() if not t.done()] + background.pending():
        await asyncio.wait(pending)


def prepare(message: Message, conversation: Conversation, user: Any) -> Context | None:
    """Claim a pending reply (pending → streaming with a conditional update: of several processes, exactly
    one gets it) and read what its upstream call needs; None if someone else has it. Synchronous: callers
    fold it into the database hop they are already in."""
    claimed = Message.objects.filter(pk=message.pk, status=Message.Status.PENDING).update(
        status=Message.Status.STREAMING, checkpointed=Now()
    )
    if claimed != 1:
        return None
    message.status = Message.Status.STREAMING
    return prompt.context(message, conversation, user)


@db
def _prepare_by_id(message_id: int) -> Context | None:
    message = Message.objects.select_related("conversation__user").filter(pk=message_id).first()
    if message is None:
        return None
    return prepare(message, message.conversation, message.conversation.user)


def admit_first_call(ctx: Context) -> None:
    """Admit the reply's first upstream call now, in the caller's database hop (synchronous): the runner
    then starts the call at once. A refusal is kept for the runner to show on the message. Replies with
    images are left to the runner, which checks the model takes images before anything is held."""
    if ctx.has_images:
        return
    try:
        ctx.admission = metered.admit_stream(ctx.user, prompt.request(ctx, ctx.history), source="chat")
    except GatewayError as exc:
        ctx.refused = exc


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
            background.spawn(metered.abandon(admission))

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
        await stopping.ask_everyone(message_id)


async def _step(
    ctx: Context, pump: DeltaPump, messages: list[dict[str, Any]], totals: Totals, thinking: ThinkingRelay, step: int
) -> tuple[Outcome, list[dict[str, Any]]]:
    """One metered upstream call; returns how it ended and the tool calls it asked for."""
    calls: dict[int, dict[str, Any]] = {}
    outcome = Outcome()
    call = None
    admission, ctx.admission = ctx.admission, None
    if ctx.refused is not None:
        refused, ctx.refused = ctx.refused, None
        return refusal(refused), []
    try:
        async with metered.stream(ctx.user, prompt.request(ctx, messages), source="chat", admission=admission) as call:
            async for event in call:
                if isinstance(event, TextDelta):
                    pump.feed(pg_text(event.text))
                elif isinstance(event, ReasoningDelta):
                    thinking.add_details(step, pg_json(list(event.details)))
                    await thinking.feed(pg_text(event.text))
                elif isinstance(event, Annotations):
                    totals.annotations += [a for a in pg_json(list(event.items)) if a not in totals.annotations]
                elif isinstance(event, ImageOut):
                    totals.images.append(event.url)
                elif isinstance(event, Usage):
                    totals.add_usage(event)
                elif isinstance(event, ToolCallDelta):
                    entry = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] = pg_text(event.id or entry["id"])
                    entry["name"] = pg_text(event.name or entry["name"])
                    entry["arguments"] += pg_text(event.arguments)
                elif isinstance(event, Started) and not totals.served_model:
                    totals.served_model, totals.provider = event.model, event.provider or ""
                elif isinstance(event, StreamError):
                    incomplete = isinstance(event.error, _INCOMPLETE_ERRORS)
                    outcome = Outcome(
                        Message.Status.INCOMPLETE if incomplete else Message.Status.ERROR,
                        f"The reply broke off: {event.error.message}" if incomplete else event.error.message,
                        "incomplete" if incomplete else "upstream_error",
                    )
    except GatewayError as exc:
        return refusal(exc), []
    finally:
        await thinking.flush()
        result = getattr(call, "result", None)
        if result is not None:
            totals.add(result)
    if outcome.status == Message.Status.COMPLETE and result is not None and result.status != "ok":
        outcome = Outcome(
            Message.Status.ERROR if result.status == "error" else Message.Status.INCOMPLETE,
            result.error or "The reply did not finish.",
            result.status,
        )
    return outcome, [calls[i] for i in sorted(calls)] if outcome.status == Message.Status.COMPLETE else []


async def _run_tools(
    ctx: Context, pump: DeltaPump, step: int, calls: list[dict[str, Any]], totals: Totals, thinking: ThinkingRelay
) -> list[dict[str, Any]]:
    """Run the calls of one step, show each in the transcript; returns the turns to send next."""
    turns = [prompt.tool_call_turn(calls, thinking.step_details(step))]
    for call in calls:
        result = await db(tools.run_offered)(ctx.conversation.tools, call["name"], call["arguments"])
        shown = {"step": step, **call, "result": result}
        totals.tool_calls.append(shown)
        turns.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        await try_publish(ctx.conversation.pk, frames.tool_frame(ctx.message.pk, shown))
    pump.checkpoint(tool_calls=list(totals.tool_calls))
    return turns


@metrics.tracks_stream("chat")
async def _stream_reply(ctx: Context, pump: DeltaPump, totals: Totals, thinking: ThinkingRelay) -> Outcome:
    messages = list(ctx.history)
    for step in range(MAX_STEPS):
        outcome, calls = await _step(ctx, pump, messages, totals, thinking, step)
        if outcome.status != Message.Status.COMPLETE or not calls:
            return outcome
        if step == MAX_STEPS - 1:
            return Outcome(Message.Status.INCOMPLETE, f"Stopped after {MAX_STEPS} tool steps.", "too_many_steps")
        messages += await _run_tools(ctx, pump, step, calls, totals, thinking)
    return Outcome()


@db
def _image_refusal(model: str) -> str | None:
    return conversations.image_refusal(model)


@cache
def _finish_statement() -> str:
    """The final row of a reply, its conversation's new total and the reply's versions (for its markup),
    written and read back in one statement (the ORM took four queries and ~2 ms of Python per reply, all of
    them when 200 replies end at once)."""
    return f"""
WITH done AS (
    UPDATE {sql.table(Message)} SET
        content = %(content)s, seq = %(seq)s, status = %(status)s, error = %(error)s,
        served_model = %(served_model)s, provider = %(provider)s, skipped = %(skipped)s,
        prompt_tokens = prompt_tokens + %(prompt_tokens)s,
        completion_tokens = completion_tokens + %(completion_tokens)s,
        cost = cost + %(cost)s, ttft_ms = %(ttft_ms)s, tokens_per_second = %(tokens_per_second)s,
        tool_calls = coalesce(%(tool_calls)s::jsonb, tool_calls),
        reasoning = %(reasoning)s, reasoning_details = %(reasoning_details)s,
        reasoning_tokens = reasoning_tokens + %(reasoning_tokens)s,
        cached_tokens = cached_tokens + %(cached_tokens)s,
        cache_write_tokens = cache_write_tokens + %(cache_write_tokens)s,
        cache_saved = cache_saved + %(cache_saved)s,
        annotations = %(annotations)s, auto_reason = %(auto_reason)s
    WHERE id = %(message)s AND (status = 'streaming' OR (status = 'incomplete' AND error = %(swept)s))
    RETURNING *
),
total AS (
    UPDATE {sql.table(Conversation)} c SET total_cost = c.total_cost + %(cost)s
    FROM done WHERE c.id = %(conversation)s
    RETURNING c.*
)
SELECT {sql.json_row(Message, "d")}, {sql.json_row(Conversation, "t")},
    (SELECT array_agg(v.id ORDER BY v.created, v.id) FROM {sql.table(Message)} v
     WHERE v.conversation_id = d.conversation_id AND v.parent_id IS NOT DISTINCT FROM d.parent_id
       AND v.role = d.role)
FROM done d, total t
"""


@db
def _finish(
    message_id: int,
    conversation_id: int,
    pump: DeltaPump,
    totals: Totals,
    outcome: Outcome,
    user: Any,
    thinking: ThinkingRelay,
    requested: str,
) -> tuple[dict[str, Any], bool, dict[str, Any] | None] | None:
    """Finalise the row and the conversation's total, in one hop; returns the done frame, whether to title
    the conversation, and the user's budget frame (None if it couldn't be read). Images the model made
    become the reply's attachments in the same hop."""
    extras = reply_extras.extras(requested, totals.served_model, user, totals.cached_tokens, totals.cache_write_tokens)
    found = sql.fetch(
        _finish_statement(),
        {
            "message": message_id,
            "conversation": conversation_id,
            "content": pump.text,
            "seq": pump.seq,
            "status": outcome.status,
            "error": pg_text(outcome.error),
            "served_model": pg_text(totals.served_model),
            "provider": pg_text(totals.provider),
            "skipped": Jsonb(pg_json(totals.skipped)),
            "prompt_tokens": totals.prompt_tokens,
            "completion_tokens": totals.completion_tokens,
            "cost": totals.cost,
            "ttft_ms": totals.ttft_ms,
            "tokens_per_second": totals.tokens_per_second,
            "tool_calls": Jsonb(totals.tool_calls) if totals.tool_calls else None,
            "reasoning": thinking.text,
            "reasoning_details": Jsonb(thinking.details),
            "reasoning_tokens": totals.reasoning_tokens,
            "cached_tokens": totals.cached_tokens,
            "cache_write_tokens": totals.cache_write_tokens,
            "cache_saved": extras.cache_saved,
            "annotations": Jsonb(totals.annotations),
            "auto_reason": pg_text(extras.auto_reason),
            "swept": ORPHAN_ERROR,
        },
    )
    if not found:
        return None
    [(row, conversation_row, versions)] = found
    message = sql.instance(Message, row)
    message.conversation = conversation = sql.instance(Conversation, conversation_row)
    images = reply_extras.store_images(message, user, totals.images)
    wants_title = (
        not conversation.title and conversation.compare_group is None and outcome.status == Message.Status.COMPLETE
    )
    try:
        budget = frames.budget_frame(spend.spend_summary(user))
    except Exception:
        log.exception("could not read the budget after message %s", message_id)
        budget = None
    versions_shown = conversations.version_position(versions, message.pk)
    done = frames.done_frame(message, conversation.total_cost, versions_shown, attachments=images)
    return done, wants_title, budget


async def _write_final(
    message_id: int,
    conversation_id: int,
    pump: DeltaPump,
    totals: Totals,
    outcome: Outcome,
    user: Any,
    thinking: ThinkingRelay,
    requested: str,
) -> tuple[dict[str, Any], bool, dict[str, Any] | None] | None:
    """Write the final row once no checkpoint can overwrite it, retrying with growing pauses while the
    database is unreachable: until then the reply's text exists only here. The statement lands once (on a
    row still streaming, or one the sweep closed meanwhile), so a retry after a write that did land but
    whose answer was lost adds the cost only once. None if there is no row to finish."""
    await checkpoints().settle(message_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINAL_PATIENCE
    delay = FINAL_RETRY_FIRST
    while True:
        try:
            return await _finish(message_id, conversation_id, pump, totals, outcome, user, thinking, requested)
        except (OperationalError, InterfaceError) as exc:
            if loop.time() + delay > deadline:
                log.error("gave up writing the final row of message %s; the sweep finishes it", message_id)
                return None
            log.warning("could not write the final row of message %s (retrying): %r", message_id, exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, FINAL_RETRY_MAX)


async def _take_back(
    message_id: int, conversation_id: int, pump: DeltaPump, held: asyncio.Task, outcome: Outcome
) -> None:
    """A reply refused before any call: no checkpoint may land after it is gone (chat.refusals)."""
    held.cancel()
    await pump.close()
    await checkpoints().settle(message_id)
    told = await db(refusals.withdraw)(message_id, outcome.error_code, outcome.error)
    if told:
        await publish_patiently(conversation_id, told)


async def _run(ctx: Context, after: asyncio.Future | None = None) -> None:
    message_id, conversation_id = ctx.message.pk, ctx.conversation.pk
    pump = DeltaPump(message_id, conversation_id, ctx.message.content, ctx.message.seq, after)
    thinking = ThinkingRelay(message_id, conversation_id, pump, after)
    thinking.text, thinking.details = ctx.message.reasoning, list(ctx.message.reasoning_details)
    totals = Totals()
    held = background.spawn(lease.hold(message_id, pump.checkpoint))
    outcome = Outcome()
    try:
        await stopping.listener(_cancel).ready()
        no_images = await _image_refusal(ctx.conversation.model) if ctx.has_images else None
        outcome = (
            Outcome(Message.Status.ERROR, no_images, "not_allowed", refused=True)
            if no_images
            else await _stream_reply(ctx, pump, totals, thinking)
        )
    except asyncio.CancelledError:
        outcome = Outcome(Message.Status.STOPPED)
    except Exception:
        log.exception("chat runner for message %s failed", message_id)
        outcome = Outcome(
            Message.Status.ERROR, "Something went wrong on our side; the reply was not finished.", "internal"
        )
    finally:
        if ctx.admission is not None:
            # Admitted with the send, stopped before the call: nothing was spent; settle it as such.
            admission, ctx.admission = ctx.admission, None
            await metered.abandon(admission)
    # The text is final here; its last deltas go out while the row is written.
    pump.seal()
    produced = totals.tool_calls or totals.cost or pump.text != ctx.message.content
    if outcome.refused and not produced and thinking.text == ctx.message.reasoning:
        await _take_back(message_id, conversation_id, pump, held, outcome)
        return
    try:
        finished = await _write_final(
            message_id, conversation_id, pump, totals, outcome, ctx.user, thinking, ctx.conversation.model
        )
    finally:
        held.cancel()
    await pump.close()
    if finished is None:
        return
    done, wants_title, budget = finished
    await publish_patiently(conversation_id, [done] if budget is None else [done, budget])
    if wants_title:
        background.spawn(title_conversation(conversation_id))

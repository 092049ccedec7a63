"""The chat websocket: transport only. Actions go to chat.conversations and chat.runner.

Delivery rule, per socket and message: deltas are forwarded only once the socket knows where the page
stands (a "message" frame it forwarded, or a `resume` with the page's seq), and only in order. A delta
that would leave a gap is filled from the Redis list first; one already sent is dropped. So every tab
gets every delta exactly once, whether it was open all along or reloaded mid-stream.

A new reply's runner starts before its "message" frames are announced (the upstream call needs neither)
and holds its first delta until they are out. Database helpers run on the loop's thread pool
(`orweb.aio.db`), and nothing here touches the database per delta.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from autobahn.exception import Disconnected
from channels.generic.websocket import AsyncWebsocketConsumer

from chat import conversations, frames, prompt, queries, runner
from chat.broadcast import publish, try_publish
from chat.conversations import ChatActionError, Sent
from chat.deltas import deltas_after
from chat.models import Conversation, Message
from orweb.aio import db

log = logging.getLogger(__name__)

MAX_FRAME = 64 * 1024
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
ACTIONS = ("send", "stop", "regenerate", "edit", "continue", "switch", "resume")


class BadFrame(Exception):
    """A frame that is well-formed JSON but not a valid action."""


def _int(frame: dict[str, Any], key: str) -> int:
    value = frame.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadFrame(f'"{key}" must be a non-negative integer.')
    return value


def _text(frame: dict[str, Any], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str):
        raise BadFrame(f'"{key}" must be a string.')
    return value


@db
def _owned_conversation(user: Any, conversation_id: int) -> Conversation | None:
    return Conversation.objects.filter(pk=conversation_id, user=user).first()


@db
def _message(conversation_id: int, message_id: int) -> Message:
    message = Message.objects.filter(pk=message_id, conversation_id=conversation_id).first()
    if message is None:
        raise ChatActionError("not_found", "Message not found.")
    return message


@db
def _send(
    user: Any, conversation_id: int, content: str, attachments: list[int]
) -> tuple[prompt.Context, Sent, list[dict[str, Any]]]:
    """Store the user's message and a reply this process runs, read what the upstream call needs, admit
    that call and render the "message" frames: one database hop, and no read of what the send just wrote
    or read."""
    try:
        sent = conversations.send_and_read(
            Conversation(pk=conversation_id, user_id=user.pk),
            content,
            attachments,
            reply_status=Message.Status.STREAMING,
        )
    except Conversation.DoesNotExist:
        raise ChatActionError("not_found", "This conversation no longer exists.") from None
    ctx = prompt.context(sent.reply, sent.reply.conversation, user, sent.turns)
    runner.admit_first_call(ctx)
    return ctx, sent, _announcement(sent)


def _announcement(sent: Sent) -> list[dict[str, Any]]:
    """The "message" frames of a send, from what it read (no query). Rendered in the send's own hop: on the
    loop a long pasted message (Markdown, highlighting) would stall every stream of the process, and a hop
    of its own would double a send's waits in the pool's queue (bench/relay.py, 200 streams: added TTFT
    p50 1.4 s with the extra hop)."""
    return [
        frames.message_frame(sent.user_message, versions=sent.versions, attachments=sent.attachments),
        frames.message_frame(
            sent.reply, versions=conversations.version_position([sent.reply.pk], sent.reply.pk), attachments=[]
        ),
    ]


@db
def _message_frames(*messages: Message) -> list[dict[str, Any]]:
    return [frames.message_frame(m) for m in messages]


@db
def _finished_frames(message_id: int) -> list[dict[str, Any]]:
    message = Message.objects.select_related("conversation").get(pk=message_id)
    versions = conversations.version_info(message)
    return [
        frames.message_frame(message, versions=versions),
        frames.done_frame(message, message.conversation.total_cost, versions=versions),
    ]


@db
def _switch(conversation_id: int, message_id: int) -> dict[str, Any]:
    conversation = Conversation.objects.get(pk=conversation_id)
    message = Message.objects.filter(pk=message_id, conversation_id=conversation_id).first()
    if message is None:
        raise ChatActionError("not_found", "Message not found.")
    leaf = conversations.switch_version(conversation, message)
    conversation.refresh_from_db()
    return frames.branch_frame(leaf.pk, queries.transcript(conversation))


class ChatConsumer(AsyncWebsocketConsumer):
    """One browser tab on one conversation."""

    async def connect(self) -> None:
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        self.group = frames.conversation_group(self.conversation_id)
        self.positions: dict[int, int] = {}
        self.finished: set[int] = set()
        self.joined = False
        self.gone = False
        # Accept first, then close with a code: a close before accept reaches the browser as a bare 1006.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        if await _owned_conversation(user, self.conversation_id) is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.joined = True
        await runner.start_pending(self.conversation_id)

    async def disconnect(self, code: int) -> None:
        self.gone = True
        if self.joined:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Frames of the group go straight to their handler. Channels would first close stale database
        connections on its one sync thread, a thread hop per frame that queues behind everyone's database
        work; these handlers never touch the database (what does runs in `orweb.aio.db`, which cleans up)."""
        if message["type"] == "chat.delta":
            await self.chat_delta(message)
        elif message["type"] == "chat.frame":
            await self.chat_frame(message)
        else:
            await super().dispatch(message)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if self.gone:
            return
        try:
            await self.send(text_data=json.dumps(frame, default=str, separators=(",", ":")))
        except Disconnected:
            # The browser left between a group frame's arrival and its send (daphne raises this from
            # autobahn); the disconnect event follows and leaves the group.
            self.gone = True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.joined:
            return
        if text_data is None:
            await self.send_frame(frames.error_frame("bad_frame", "Frames must be JSON text."))
            return
        if len(text_data) > MAX_FRAME:
            await self.send_frame(frames.error_frame("too_large", f"Frames are limited to {MAX_FRAME // 1024} KB."))
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self.send_frame(frames.error_frame("bad_frame", "That frame is not valid JSON."))
            return
        if not isinstance(frame, dict):
            await self.send_frame(frames.error_frame("bad_frame", "A frame must be a JSON object."))
            return
        action = frame.get("action")
        if action not in ACTIONS:
            await self.send_frame(frames.error_frame("unknown_action", f"Unknown action: {str(action)[:40]!r}."))
            return
        try:
            await getattr(self, f"do_{action}")(frame)
        except BadFrame as exc:
            await self.send_frame(frames.error_frame("bad_frame", str(exc)))
        except ChatActionError as exc:
            await self.send_frame(frames.error_frame(exc.code, exc.message))

    async def _announce(self, *messages: Message) -> None:
        await self._publish_all(await _message_frames(*messages))

    async def _publish_all(self, frames_: list[dict[str, Any]]) -> None:
        """Announce frames; with Redis away they are skipped (logged), never failing the action: the reply
        runs anyway, and its "done" reaches the tabs once the relay is back."""
        for frame in frames_:
            await try_publish(self.conversation_id, frame)

    async def _start(self, reply: Message, *announce: Message) -> None:
        """Start the reply's runner and announce `announce` meanwhile.

        The announcement is its own task, so the runner (which waits for it) isn't left hanging if this
        socket goes away mid-way."""
        announced = asyncio.ensure_future(self._announce(*announce))
        await runner.start(reply.pk, after=announced)
        await asyncio.shield(announced)

    async def do_send(self, frame: dict[str, Any]) -> None:
        content = _text(frame, "content")
        attachments = frame.get("attachments", [])
        if not isinstance(attachments, list) or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in attachments
        ):
            raise BadFrame('"attachments" must be a list of ids.')
        ctx, _, announcement = await _send(self.user, self.conversation_id, content, attachments)
        announced = asyncio.ensure_future(self._publish_all(announcement))
        runner.launch(ctx, after=announced)
        await asyncio.shield(announced)

    async def do_stop(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, _int(frame, "message_id"))
        if not message.is_live:
            raise ChatActionError("not_running", "That reply is not streaming.")
        await runner.stop(message.pk)

    async def do_regenerate(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, _int(frame, "message_id"))
        reply = await db(conversations.regenerate)(message)
        await self._start(reply, reply)

    async def do_edit(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, _int(frame, "message_id"))
        edited, reply = await db(conversations.edit_and_resend)(message, _text(frame, "content"))
        await self._start(reply, edited, reply)

    async def do_continue(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, _int(frame, "message_id"))
        reply = await db(conversations.continue_after_error)(message)
        await self._start(reply, reply)

    async def do_switch(self, frame: dict[str, Any]) -> None:
        branch = await _switch(self.conversation_id, _int(frame, "message_id"))
        await publish(self.conversation_id, branch)

    async def do_resume(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, _int(frame, "message_id"))
        after = _int(frame, "after_seq")
        if not message.is_live:
            await self._send_finished(message.pk)
            return
        self.positions[message.pk] = max(after, self.positions.get(message.pk, after))
        await self._catch_up(message.pk)

    async def _send_finished(self, message_id: int) -> None:
        """Asked for explicitly, so always answered; a live "done" arriving later is then dropped."""
        self.finished.add(message_id)
        for frame in await _finished_frames(message_id):
            await self.send_frame(frame)

    async def _catch_up(self, message_id: int, upto: int | None = None) -> None:
        """Send the stored deltas after this socket's position (up to `upto`), in order."""
        for seq, text in await deltas_after(message_id, self.positions[message_id]):
            if upto is not None and seq > upto:
                break
            if seq != self.positions[message_id] + 1:
                log.warning("delta %s of message %s is missing from redis", seq - 1, message_id)
            self.positions[message_id] = seq
            await self.send_frame({"type": "delta", "message_id": message_id, "seq": seq, "text": text})

    async def chat_delta(self, event: dict[str, Any]) -> None:
        message_id, seq = event["message_id"], event["seq"]
        position = self.positions.get(message_id)
        if position is None or seq <= position:
            return
        if seq > position + 1:
            await self._catch_up(message_id, upto=seq)
            return
        self.positions[message_id] = seq
        await self.send_frame({"type": "delta", "message_id": message_id, "seq": seq, "text": event["text"]})

    async def chat_frame(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        if frame["type"] == "message":
            message = frame["message"]
            if message["status"] in (Message.Status.PENDING, Message.Status.STREAMING):
                self.positions[message["id"]] = message["seq"]
                self.finished.discard(message["id"])
        elif frame["type"] == "done":
            if frame["message_id"] in self.finished:
                return
            self.finished.add(frame["message_id"])
        await self.send_frame(frame)

"""The chat websocket: transport only. Actions go to chat.conversations and chat.runner.

Delivery rule, per socket and message: deltas are forwarded only once the socket knows where the page
stands (a "message" frame it forwarded, or a `resume` with the page's seq), and only in order. A delta
that would leave a gap is filled from the Redis list first; one already sent is dropped. So every tab
gets every delta exactly once, whether it was open all along or reloaded mid-stream.

A new reply's runner starts before its "message" frames are announced (the upstream call needs neither)
and holds its first delta until they are out. Database helpers run on the loop's thread pool
(`orweb.aio.db`), and nothing here touches the database per delta.

Frames from the browser are read as fast as they arrive and never pile up: each is counted against the
socket's budget (chat.socket_limits), parsed, and its action queued behind the socket's running one, at
most ACTIONS_WAITING deep; anything over is answered with an error frame at once. Actions run one at a
time per socket, off the reading path, so a slow action never makes the server buffer frames, and a
socket that closes drops what was waiting (the running action finishes: it may have started a reply).
Every malformed frame (not JSON, wrong types, too large, NUL or broken Unicode in text) and every
failed action gets an error frame; the socket stays open. Actions that spend (send, regenerate, edit,
continue) first re-check that the socket's session and user are still signed in (chat.disconnect).

Close codes:
  4401  not signed in: no session at connect, or since signed out, deactivated or deleted
  4403  the conversation isn't this user's (or doesn't exist)
  4409  the user already has ORWEB_WS_SOCKETS_PER_USER sockets open (in any process)
  4429  the socket kept sending after being told it was over its frame rate
A close of a socket that was let in (4401 after a sign-out, 4409, 4429) comes right after an error frame
saying why (codes `signed_out`, `too_many_sockets`, `flooding`). A sign-out reaches the socket as a
`chat.signed_out` event on its user's or session's group, from any process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any

from autobahn.exception import Disconnected
from channels.generic.websocket import AsyncWebsocketConsumer

from chat import background, conversations, disconnect, frames, inbound, prompt, queries, runner, socket_limits
from chat.broadcast import publish, try_publish
from chat.conversations import ChatActionError, Sent
from chat.deltas import deltas_after
from chat.disconnect import SignedOut, SignIn
from chat.models import Conversation, Message
from orweb import metrics as orweb_metrics
from orweb.aio import db

log = logging.getLogger(__name__)

ACTIONS_WAITING = 8
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_SOCKETS = 4409
CLOSE_FLOODING = 4429


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
    user: Any, conversation_id: int, content: str, attachments: list[int], sign_in: SignIn | None = None
) -> tuple[prompt.Context, Sent, list[dict[str, Any]]]:
    """Check `sign_in` still holds (when given), store the user's message and a reply this process runs,
    read what the upstream call needs, admit that call and render the "message" frames: one database hop,
    and no read of what the send just wrote or read."""
    if sign_in is not None:
        sign_in.check()
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
def _signed_in_then(sign_in: SignIn, action: Any, *args: Any) -> Any:
    """`action(*args)` if the socket is still signed in (one database hop for both), else SignedOut."""
    sign_in.check()
    return action(*args)


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
    """One browser tab on one conversation (close codes: see the module's docstring)."""

    closed = False  # closed by us: nothing more is read or sent
    gone = False  # the browser left

    async def connect(self) -> None:
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        self.groups_joined: list[str] = []
        self.positions: dict[int, int] = {}
        self.finished: set[int] = set()
        self.budget = socket_limits.FrameBudget()
        self.waiting: deque[tuple[str, dict[str, Any]]] = deque()
        self.working: asyncio.Task | None = None
        self.leased = False
        self.ready = False
        # Accept first, then close with a code: a close before accept reaches the browser as a bare 1006.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.sign_in = SignIn(user.pk, getattr(self.scope.get("session"), "session_key", None))
        if not await socket_limits.take_socket(user.pk, self.channel_name):
            limit = socket_limits.sockets_per_user()
            message = f"You have {limit} chat tabs open already; close one to open this one."
            await self._close(CLOSE_TOO_MANY_SOCKETS, "too_many_sockets", message)
            return
        self.leased = True
        orweb_metrics.ACTIVE_SOCKETS.inc()
        try:
            await self._join()
        except BaseException:
            await self.disconnect(1011)  # Channels won't call it when connect fails: the lease goes back now
            raise

    async def _join(self) -> None:
        if await _owned_conversation(self.user, self.conversation_id) is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        groups = [frames.conversation_group(self.conversation_id), disconnect.user_group(self.user.pk)]
        if self.sign_in.session_key:
            groups.append(disconnect.session_group(self.sign_in.session_key))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        self.ready = True
        await runner.start_pending(self.conversation_id)

    async def disconnect(self, code: int) -> None:
        self.gone = True
        self.waiting.clear()
        if self.leased:
            self.leased = False
            orweb_metrics.ACTIVE_SOCKETS.dec()
            await socket_limits.release_socket(self.user.pk, self.channel_name)
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Frames of the groups go straight to their handler. Channels would first close stale database
        connections on its one sync thread, a thread hop per frame that queues behind everyone's database
        work; these handlers never touch the database (what does runs in `orweb.aio.db`, which cleans up)."""
        if message["type"] == "chat.delta":
            await self.chat_delta(message)
        elif message["type"] == "chat.frame":
            await self.chat_frame(message)
        elif message["type"] == disconnect.SIGNED_OUT:
            await self._close(CLOSE_UNAUTHENTICATED, "signed_out", message["message"])
        else:
            await super().dispatch(message)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if self.gone or self.closed:
            return
        await self._send_json(frame)

    async def _send_json(self, frame: dict[str, Any]) -> None:
        try:
            await self.send(text_data=json.dumps(frame, default=str, separators=(",", ":")))
        except Disconnected:
            # The browser left between a group frame's arrival and its send (daphne raises this from
            # autobahn); the disconnect event follows and leaves the groups.
            self.gone = True

    async def _close(self, code: int, reason: str, message: str) -> None:
        """Tell the tab why, then close: nothing more is read, sent or worked on."""
        if self.closed or self.gone:
            return
        self.closed = True
        self.waiting.clear()
        await self._send_json(frames.error_frame(reason, message))
        await self.close(code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Cheap whatever the frame: count it, parse it, queue its action (or say why not)."""
        if not self.ready or self.closed:
            return
        if not self.budget.allow():
            per_second = f"{self.budget.per_second:g}"
            await self._refuse("rate_limited", f"Too many frames: at most {per_second} a second. Slow down.")
            return
        if text_data is None:
            await self.send_frame(frames.error_frame("bad_frame", "Frames must be JSON text."))
            return
        try:
            frame = inbound.parse(text_data)
        except inbound.BadFrame as exc:
            await self.send_frame(frames.error_frame(exc.code, str(exc)))
            return
        if len(self.waiting) >= ACTIONS_WAITING:
            await self._refuse("busy", "Too many actions are waiting on this tab; try again in a moment.")
            return
        self.waiting.append((frame["action"], frame))
        if self.working is None or self.working.done():
            self.working = background.spawn(self._work())

    async def _refuse(self, code: str, message: str) -> None:
        """Answer a frame over the limits; close a socket that keeps sending them."""
        if self.budget.forgive():
            await self.send_frame(frames.error_frame(code, message))
        else:
            await self._close(CLOSE_FLOODING, "flooding", "This tab sent too many frames and was closed.")

    async def _work(self) -> None:
        """Run the waiting actions in order until none is left (or the socket has gone)."""
        while self.waiting and not (self.gone or self.closed):
            action, frame = self.waiting.popleft()
            await self._act(action, frame)

    async def _act(self, action: str, frame: dict[str, Any]) -> None:
        try:
            await getattr(self, f"do_{action}")(frame)
        except inbound.BadFrame as exc:
            await self.send_frame(frames.error_frame(exc.code, str(exc)))
        except ChatActionError as exc:
            await self.send_frame(frames.error_frame(exc.code, exc.message))
        except SignedOut as exc:
            await self._close(CLOSE_UNAUTHENTICATED, "signed_out", str(exc))
        except Exception:
            log.exception("chat action %r failed on conversation %s", action, self.conversation_id)
            await self.send_frame(frames.error_frame("server_error", "That didn't work (an error on our side)."))

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
        content, attachments = inbound.text(frame, "content"), inbound.attachments(frame)
        ctx, _, announcement = await _send(self.user, self.conversation_id, content, attachments, self.sign_in)
        announced = asyncio.ensure_future(self._publish_all(announcement))
        runner.launch(ctx, after=announced)
        await asyncio.shield(announced)

    async def do_stop(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, inbound.integer(frame, "message_id"))
        if not message.is_live:
            raise ChatActionError("not_running", "That reply is not streaming.")
        await runner.stop(message.pk)

    async def do_regenerate(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, inbound.integer(frame, "message_id"))
        reply = await _signed_in_then(self.sign_in, conversations.regenerate, message)
        await self._start(reply, reply)

    async def do_edit(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, inbound.integer(frame, "message_id"))
        content = inbound.text(frame, "content")
        edited, reply = await _signed_in_then(self.sign_in, conversations.edit_and_resend, message, content)
        await self._start(reply, edited, reply)

    async def do_continue(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, inbound.integer(frame, "message_id"))
        reply = await _signed_in_then(self.sign_in, conversations.continue_after_error, message)
        await self._start(reply, reply)

    async def do_switch(self, frame: dict[str, Any]) -> None:
        branch = await _switch(self.conversation_id, inbound.integer(frame, "message_id"))
        await publish(self.conversation_id, branch)

    async def do_resume(self, frame: dict[str, Any]) -> None:
        message = await _message(self.conversation_id, inbound.integer(frame, "message_id"))
        after = inbound.integer(frame, "after_seq")
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
        """Send the stored deltas after this socket's position (up to `upto`), in order. Live deltas (and a
        `resume`, which runs beside them) may move the position while the list is read: what they sent
        is skipped."""
        for seq, text in await deltas_after(message_id, self.positions[message_id]):
            if upto is not None and seq > upto:
                break
            if seq <= self.positions[message_id]:
                continue
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

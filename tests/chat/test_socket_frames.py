"""Malformed frames through the real ASGI app (origin check, session cookie): each is answered with an
error frame and the socket stays up; nothing a browser can send closes it with 1011."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from chat import conversations
from chat.models import Message
from tests.helpers.personas import close_code, websocket_as

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulator", "drained")]


async def answer(socket, frame) -> dict:
    await socket.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))
    return await socket.receive_json_from(timeout=10)


async def until_done(socket) -> dict:
    while (frame := await socket.receive_json_from(timeout=20))["type"] != "done":
        pass
    return frame


@database_sync_to_async
def finished_exchange(conversation) -> Message:
    """A user message and its finished reply (a pending one would start streaming when a socket opens)."""
    _, reply = conversations.send(conversation, "hi")
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="hello")
    return reply


@database_sync_to_async
def stored_texts(conversation) -> list[str]:
    return list(Message.objects.filter(conversation=conversation, role="user").values_list("content", flat=True))


async def test_a_nul_in_a_send_is_answered_with_an_error_frame_and_stores_nothing(conversation, owner_client):
    async with websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as socket:
        refused = await answer(socket, {"action": "send", "content": "a\x00b"})
        assert (refused["type"], refused["code"]) == ("error", "bad_frame")
        assert "NUL" in refused["message"]
        assert await stored_texts(conversation) == []

        await socket.send_to(text_data=json.dumps({"action": "send", "content": "echo: still here"}))
        assert (await until_done(socket))["status"] == "complete"
        assert await close_code(socket) is None
    assert await stored_texts(conversation) == ["echo: still here"]


async def test_malformed_frames_get_error_frames_never_a_close(conversation, owner_client):
    reply = await finished_exchange(conversation)
    cases = [
        ("[" * 60_000, "bad_frame"),  # deeper than the JSON parser goes
        ('{"action": "stop", "message_id": ' + "7" * 5000 + "}", "bad_frame"),  # past Python's int digits
        ({"action": "stop", "message_id": 2**64}, "bad_frame"),  # past PostgreSQL's bigint
        ({"action": "resume", "message_id": reply.pk, "after_seq": -1}, "bad_frame"),
        ('{"action": "send", "content": "\\ud800"}', "bad_frame"),  # a lone surrogate
        ({"action": "edit", "message_id": reply.pk, "content": "x\x00"}, "bad_frame"),
        ({"action": "send", "content": "hi", "attachments": [2**70]}, "bad_frame"),
        ({"action": "send", "content": "hi", "attachments": list(range(1, 1000))}, "bad_frame"),
        ({"action": "send", "content": "hi", "attachments": "1,2"}, "bad_frame"),
        ({"action": ["send"]}, "unknown_action"),
        ("null", "bad_frame"),
        ({"action": "send", "content": "x" * (70 * 1024)}, "too_large"),
    ]
    async with websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as socket:
        for frame, code in cases:
            got = await answer(socket, frame)
            assert (got["type"], got["code"]) == ("error", code), str(frame)[:80]
        await socket.send_to(bytes_data=b"\x00" * 10)
        assert (await socket.receive_json_from())["code"] == "bad_frame"
        assert await close_code(socket) is None
    assert await stored_texts(conversation) == ["hi"]


async def test_an_action_that_fails_unexpectedly_is_answered_and_the_socket_stays_up(
    conversation, owner_client, monkeypatch
):
    reply = await finished_exchange(conversation)

    def broken(conversation, message):
        raise RuntimeError("a bug")

    monkeypatch.setattr(conversations, "switch_version", broken)
    async with websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as socket:
        got = await answer(socket, {"action": "switch", "message_id": reply.pk})
        assert (got["type"], got["code"]) == ("error", "server_error")
        assert "a bug" not in got["message"]
        assert await close_code(socket) is None

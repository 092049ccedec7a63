"""What one user can ask of the chat sockets, through the real ASGI app: a bounded number of sockets (leases
in Redis that a dead process stops holding), a bounded rate of frames per socket, a bounded queue of
actions per socket that a closing socket drops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
import redis
from channels.db import database_sync_to_async
from django.conf import settings

from chat import consumers, conversations, runner, socket_limits
from chat.models import Message
from tests.helpers.chat import Socket
from tests.helpers.personas import close_code, websocket_as

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulator", "drained")]


def leases(user_id: int) -> dict[str, float]:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        return dict(client.zrange(socket_limits.sockets_key(user_id), 0, -1, withscores=True))
    finally:
        client.close()


def lease_left_by_a_dead_process(user_id: int, name: str, expires: float) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.zadd(socket_limits.sockets_key(user_id), {name: expires})
    client.close()


@database_sync_to_async
def finished_reply(conversation) -> Message:
    _, reply = conversations.send(conversation, "hi")
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="hello")
    return reply


async def refused_with(socket) -> tuple[str, int | None]:
    """The error frame's code and the close code of a socket the server turned away."""
    frame = await socket.receive_json_from(timeout=10)
    return frame["code"], (await socket.receive_output(10)).get("code")


async def test_a_user_holds_at_most_the_limit_of_sockets(
    settings, conversation, owner, owner_client, teammate_client, teammate
):
    settings.ORWEB_WS_SOCKETS_PER_USER = 3
    path = f"/ws/chat/{conversation.pk}/"
    theirs = await database_sync_to_async(conversations.create_conversation)(teammate, model=conversation.model)
    async with contextlib.AsyncExitStack() as stack, contextlib.AsyncExitStack() as first:
        tabs = [await first.enter_async_context(websocket_as(owner_client, path))]
        tabs += [await stack.enter_async_context(websocket_as(owner_client, path)) for _ in range(2)]
        assert [await close_code(tab) for tab in tabs] == [None, None, None]
        assert len(leases(owner.pk)) == 3

        async with websocket_as(owner_client, path) as fourth:
            assert await refused_with(fourth) == ("too_many_sockets", consumers.CLOSE_TOO_MANY_SOCKETS)
        async with websocket_as(teammate_client, f"/ws/chat/{theirs.pk}/") as other:
            assert await close_code(other) is None  # someone else's sockets don't count

        await first.aclose()
        async with websocket_as(owner_client, path) as again:
            assert await close_code(again) is None  # a socket that closed gave its place back
    assert leases(owner.pk) == {}


async def test_leases_a_dead_process_left_stop_counting_when_they_expire(settings, conversation, owner, owner_client):
    settings.ORWEB_WS_SOCKETS_PER_USER = 2
    path = f"/ws/chat/{conversation.pk}/"
    lease_left_by_a_dead_process(owner.pk, "dead-1", time.time() + 60)
    lease_left_by_a_dead_process(owner.pk, "dead-2", time.time() + 60)
    async with websocket_as(owner_client, path) as socket:
        assert await refused_with(socket) == ("too_many_sockets", consumers.CLOSE_TOO_MANY_SOCKETS)

    lease_left_by_a_dead_process(owner.pk, "dead-1", time.time() - 1)
    lease_left_by_a_dead_process(owner.pk, "dead-2", time.time() - 1)
    async with websocket_as(owner_client, path) as socket:
        assert await close_code(socket) is None
        assert "dead-1" not in leases(owner.pk)


async def test_a_process_renews_the_leases_of_its_open_sockets(conversation, owner, owner_client):
    async with websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as socket:
        assert await close_code(socket) is None
        [(name, expires)] = leases(owner.pk).items()
        lease_left_by_a_dead_process(owner.pk, name, time.time() + 1)  # as if about to lapse
        await socket_limits.renew()
        assert leases(owner.pk)[name] > time.time() + socket_limits.LEASE_TTL - 10


async def test_frames_over_the_rate_get_error_frames_and_a_flood_is_closed(settings, conversation, owner_client):
    settings.ORWEB_WS_FRAME_BURST = 3
    settings.ORWEB_WS_FRAMES_PER_SECOND = 0.01
    reply = await finished_reply(conversation)
    resume = json.dumps({"action": "resume", "message_id": reply.pk, "after_seq": 0})
    async with websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as socket:
        await socket.send_to(text_data=resume)  # one of the burst: answered with the message and "done"
        assert [(await socket.receive_json_from())["type"] for _ in range(2)] == ["message", "done"]
        for _ in range(2):
            await socket.send_to(text_data="{not json")
            assert (await socket.receive_json_from())["code"] == "bad_frame"
        await socket.send_to(text_data=resume)
        limited = await socket.receive_json_from()
        assert limited["code"] == "rate_limited"
        assert limited["message"] == "Too many frames: at most 0.01 a second. Slow down."

        for _ in range(socket_limits.REFUSALS_BEFORE_CLOSE * 3):
            await socket.send_to(text_data=resume)
        codes = []
        while (output := await socket.receive_output(10))["type"] == "websocket.send":
            codes.append(json.loads(output["text"])["code"])
        assert set(codes[:-1]) == {"rate_limited"} and codes[-1] == "flooding"
        assert len(codes) < socket_limits.REFUSALS_BEFORE_CLOSE * 2
        assert output["code"] == consumers.CLOSE_FLOODING


async def test_actions_queue_boundedly_behind_the_running_one_and_a_closing_socket_drops_them(
    settings, conversation, owner_client, monkeypatch
):
    settings.ORWEB_WS_FRAME_BURST = 100
    reply = await finished_reply(conversation)
    started, release, ran = asyncio.Event(), asyncio.Event(), []

    async def slow_switch(conversation_id: int, message_id: int) -> dict:
        ran.append(message_id)
        started.set()
        await release.wait()
        return {"type": "branch", "leaf_id": message_id, "messages": []}

    monkeypatch.setattr(consumers, "_switch", slow_switch)
    switch = json.dumps({"action": "switch", "message_id": reply.pk})
    async with websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as socket:
        await socket.send_to(text_data=switch)
        await asyncio.wait_for(started.wait(), 10)
        for _ in range(consumers.ACTIONS_WAITING + 3):
            await socket.send_to(text_data=switch)
        # Read while the first action still runs: the overflow is answered at once.
        busy = [await socket.receive_json_from(timeout=10) for _ in range(3)]
        assert [frame["code"] for frame in busy] == ["busy"] * 3
        await socket.disconnect()
    release.set()
    await runner.drain()
    assert ran == [reply.pk]  # the eight that waited went with the socket


async def test_a_socket_that_fails_to_open_gives_its_place_back(conversation, owner, monkeypatch):
    async def redis_away(conversation_id: int) -> list[int]:
        raise RuntimeError("redis away")

    monkeypatch.setattr(runner, "start_pending", redis_away)
    socket = Socket(owner, conversation.pk)
    await socket.open()
    with pytest.raises(RuntimeError, match="redis away"):
        await socket.communicator.wait(10)
    assert leases(owner.pk) == {}

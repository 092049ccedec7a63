"""The chat sockets of a real web process (`python -m orweb.serve`, daphne), from real websocket clients:
a flood of frames is refused, closed and leaves no work behind, and a deactivation or a sign-out in
another process (this one) closes the sockets open in the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Iterator

import psutil
import pytest
import websockets
from channels.db import database_sync_to_async
from django.conf import settings

from chat import consumers, conversations, socket_limits
from chat.models import Conversation, Message
from tests.chat.conftest import _forget_redis_clients
from tests.faults.conftest import WebProcess, server_env
from tests.helpers.chat import MODEL
from tests.helpers.personas import signed_in
from tests.helpers.servers import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)

FLOODERS = socket_limits.SOCKETS_PER_USER - 1
FRAMES_EACH = 2000


@pytest.fixture
def web(simulator, settings, tmp_path) -> Iterator[WebProcess]:
    """A web process sharing the test's database and simulator, and a Redis of their own whose channel
    layer both use as a server process does (no test prefix): so this process's group sends reach it."""
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_server.url
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [redis_server.url]}}
    }
    _forget_redis_clients()
    journal = tmp_path / "journal"
    journal.mkdir()
    server = WebProcess(server_env(simulator, settings, journal))
    server.start()
    yield server
    server.stop()
    redis_server.kill()
    _forget_redis_clients()


def cookie_of(user) -> str:
    return f"{settings.SESSION_COOKIE_NAME}={signed_in(user).cookies[settings.SESSION_COOKIE_NAME].value}"


def connect(web: WebProcess, cookie: str, conversation_id: int):
    url = f"ws://127.0.0.1:{web.port}/ws/chat/{conversation_id}/"
    return websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": web.url})


async def what_came_back(socket) -> list[str]:
    """Every frame until the server closes the socket: its type, or an error's code."""
    seen = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in socket:
            frame = json.loads(raw)
            seen.append(frame["code"] if frame["type"] == "error" else frame["type"])
    return seen


async def ready(socket, message_id: int) -> None:
    """Wait until the server works on this socket's frames (a resume answered)."""
    await socket.send(json.dumps({"action": "resume", "message_id": message_id, "after_seq": 0}))
    assert [json.loads(await socket.recv())["type"] for _ in range(2)] == ["message", "done"]


async def flood(socket, message_id: int) -> tuple[list[str], int]:
    """Send FRAMES_EACH switch frames as fast as the socket takes them; what came back, and the close code."""
    frame = json.dumps({"action": "switch", "message_id": message_id})

    async def send_all() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(FRAMES_EACH):
                await socket.send(frame)

    sender = asyncio.create_task(send_all())
    async with asyncio.timeout(60):  # a flood nobody stops would go on for minutes
        seen = await what_came_back(socket)
        await sender
    return seen, socket.close_code


async def reply_round_trip(web: WebProcess, cookie: str, conversation_id: int) -> str:
    async with connect(web, cookie, conversation_id) as socket:
        await socket.send(json.dumps({"action": "send", "content": "echo: still served"}))
        async for raw in socket:
            frame = json.loads(raw)
            if frame["type"] in ("done", "error"):
                return frame.get("status") or frame["code"]
    return "closed"


@database_sync_to_async
def exchanges(user, count: int) -> list[tuple[int, int]]:
    """`count` conversations of `user`, each with a finished exchange: (conversation id, reply id)."""
    made = []
    for n in range(count):
        conversation = conversations.create_conversation(user, model=MODEL, title=f"c{n}")
        _, reply = conversations.send(conversation, "hi")
        Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="hello")
        made.append((conversation.pk, reply.pk))
    return made


@database_sync_to_async
def last_changes(ids: list[int]) -> dict[int, object]:
    return dict(Conversation.objects.filter(pk__in=ids).values_list("pk", "updated"))


async def test_a_flood_of_frames_is_refused_closed_and_leaves_no_work_behind(web, catalog, owner, teammate):
    owner_cookie = await database_sync_to_async(cookie_of)(owner)
    teammate_cookie = await database_sync_to_async(cookie_of)(teammate)
    made = await exchanges(owner, FLOODERS + 1)
    [(theirs, _)] = await exchanges(teammate, 1)
    server = psutil.Process(web.process.pid)
    rss_before = server.memory_info().rss

    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connect(web, owner_cookie, cid)) for cid, _ in made]
        for socket, (_, mid) in zip(sockets, made, strict=True):
            await ready(socket, mid)
        async with connect(web, owner_cookie, made[0][0]) as one_too_many:
            assert await what_came_back(one_too_many) == ["too_many_sockets"]
            assert one_too_many.close_code == consumers.CLOSE_TOO_MANY_SOCKETS

        *flooders, watcher = sockets
        results = await asyncio.gather(*(flood(socket, mid) for socket, (_, mid) in zip(flooders, made, strict=False)))
        await ready(watcher, made[-1][1])  # the user's idle socket was never disturbed

    for seen, code in results:
        counts = Counter(seen)
        assert code == consumers.CLOSE_FLOODING and seen[-1] == "flooding"
        assert set(counts) <= {"branch", "busy", "rate_limited", "flooding"}
        # Of 2,000 frames, about the burst was taken on (a switch's answer may come after the close, and on a
        # slow machine the budget refills a little while the flood is read): the rest was refused until the
        # socket had been told REFUSALS_BEFORE_CLOSE times.
        assert counts["branch"] + counts["busy"] <= 2 * socket_limits.FRAME_BURST
        assert counts["busy"] + counts["rate_limited"] <= socket_limits.REFUSALS_BEFORE_CLOSE + 5
    assert server.memory_info().rss - rss_before < 100 * 2**20

    # Nothing left queued in the server: once the reply of another user has been served, the flooded
    # conversations stay as they are while a second one is.
    flooded = [cid for cid, _ in made[:FLOODERS]]
    assert await reply_round_trip(web, teammate_cookie, theirs) == "complete"
    settled = await last_changes(flooded)
    assert await reply_round_trip(web, teammate_cookie, theirs) == "complete"
    assert await last_changes(flooded) == settled


@database_sync_to_async
def deactivate(user) -> None:
    user.is_active = False
    user.save()


async def test_a_sign_out_or_a_deactivation_here_closes_sockets_open_in_the_server(web, catalog, owner):
    phone, laptop = await database_sync_to_async(signed_in)(owner), await database_sync_to_async(signed_in)(owner)
    [(conversation_id, reply_id)] = await exchanges(owner, 1)

    def cookie(client) -> str:
        return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    async with (
        connect(web, cookie(phone), conversation_id) as phone_tab,
        connect(web, cookie(laptop), conversation_id) as laptop_tab,
    ):
        await ready(phone_tab, reply_id)  # both have joined their groups
        await ready(laptop_tab, reply_id)
        await database_sync_to_async(phone.logout)()
        assert await what_came_back(phone_tab) == ["signed_out"]
        assert phone_tab.close_code == consumers.CLOSE_UNAUTHENTICATED

        await deactivate(owner)
        assert await what_came_back(laptop_tab) == ["signed_out"]
        assert laptop_tab.close_code == consumers.CLOSE_UNAUTHENTICATED

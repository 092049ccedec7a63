"""A reply's life in the runner: frames in order, the lease, Stop from here and from another process."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from decimal import Decimal
from pathlib import Path

import channels.consumer
import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from billing.models import Budget, Hold, LedgerEntry
from chat import consumers, conversations, lease, runner
from chat.models import Message
from orweb.redis_clients import async_client
from tests.helpers.chat import Socket, deltas, reply_id, row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulator", "drained")]


async def test_relayed_frames_go_to_the_socket_without_a_hop_to_the_sync_thread(conversation, monkeypatch):
    hops = []

    async def counted_hop() -> None:
        hops.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted_hop)
    socket = await Socket(conversation.user, conversation.pk).open()
    connecting = len(hops)
    await socket.send({"action": "send", "content": "echo: one two three four five six [[sim tps=200]]"})
    _, seen = await socket.until("done")
    assert len(seen) > 3
    assert len(hops) == connecting + 1  # the "send" action only, none for the frames


async def test_a_new_reply_is_announced_before_its_first_delta(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: one two three [[sim tps=200]]"})
    _, seen = await socket.until("done")
    mid = reply_id(seen)
    kinds = [f["type"] for f in seen if f.get("message_id") == mid or f.get("message", {}).get("id") == mid]
    assert kinds[0] == "message" and "delta" in kinds
    assert "".join(text for _, text in deltas(seen, mid)) == "one two three"
    await socket.close()


async def test_sending_to_a_deleted_conversation_is_refused(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    # The socket is accepted before its ownership check: an answered frame says that check has passed, so
    # the deletion comes after it (deleted sooner, the socket is closed as not the user's instead).
    await socket.send({"action": "dance"})
    assert (await socket.receive())["type"] == "error"
    await database_sync_to_async(conversations.delete)(conversation)
    await socket.send({"action": "send", "content": "hello"})
    answer = await socket.receive()
    assert (answer["type"], answer["code"]) == ("error", "not_found")
    await socket.close()


async def test_a_reply_that_is_streaming_holds_a_lease_and_lets_go_when_done(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "write [[sim tokens=200 tps=100]]"})
    _, seen = await socket.until("delta")
    mid = reply_id(seen)
    assert await async_client().exists(lease.lease_key(mid))
    await socket.send({"action": "stop", "message_id": mid})
    await socket.until("done")
    await runner.drain()
    assert not await async_client().exists(lease.lease_key(mid))
    await socket.close()


@database_sync_to_async
def admitted_reply(conversation, owner):
    Budget.objects.create(user=owner, limit_usd=Decimal(5))
    ctx, _, _ = inspect.unwrap(consumers._send)(owner, conversation.pk, "hello", [])
    assert ctx.admission is not None
    return ctx


@database_sync_to_async
def settled(ctx):
    return list(LedgerEntry.objects.filter(user=ctx.user)), Hold.objects.get(pk=ctx.admission.hold_id)


@pytest.mark.parametrize("when", ["before it runs", "before the call"])
async def test_a_reply_stopped_before_its_admitted_call_settles_it_once_with_nothing_spent(conversation, owner, when):
    ctx = await admitted_reply(conversation, owner)
    admission = ctx.admission
    if when == "before the call":
        ctx.has_images = True  # the runner first checks the model takes images: a database hop to stop in
    runner.launch(ctx)
    if when == "before the call":
        await asyncio.sleep(0)
    await runner.stop(ctx.message.pk)
    await runner.drain()

    ctx.admission = admission
    entries, hold = await settled(ctx)
    assert [(e.status, e.cost) for e in entries] == [(LedgerEntry.Status.CANCELLED, Decimal(0))]
    assert hold.released_at is not None


LONG = " ".join(f"w{i}" for i in range(120))
STOP_FROM_ANOTHER_PROCESS = """
import asyncio, sys
import django
django.setup()
from django.conf import settings
settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = sys.argv[2]  # as this run's conftest does
from chat import runner
asyncio.run(runner.stop(int(sys.argv[1])))
"""


async def test_stop_from_another_process_stops_the_reply_where_it_runs(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    # One word, then upstream goes quiet until the call is stopped: however slow the other process is to
    # start, the reply is still running when its stop comes.
    await socket.send({"action": "send", "content": f"echo: {LONG} [[sim stall=120 stall_after=1]]"})
    first, seen = await socket.until("delta")

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "SECRET_KEY": settings.SECRET_KEY}
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        STOP_FROM_ANOTHER_PROCESS,
        str(first["message_id"]),
        prefix,
        cwd=Path(__file__).parent.parent.parent,
        env=env,
    )
    assert await asyncio.wait_for(other.wait(), 60) == 0
    done, _ = await socket.until("done", timeout=30)

    assert done["status"] == Message.Status.STOPPED
    assert 0 < len((await row(first["message_id"])).content) < len(LONG)
    await socket.close()

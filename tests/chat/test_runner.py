"""The runner's plumbing: batched checkpoints, its own pub/sub publishing, ordering of frames, the lease."""

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
from channels.layers import get_channel_layer
from django.conf import settings

from billing.models import Budget, Hold, LedgerEntry
from chat import consumers, conversations, frames, runner
from chat.models import Message
from tests.helpers.chat import Socket, deltas, reply_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulator", "drained")]


@database_sync_to_async
def new_reply(conversation) -> Message:
    return conversations.send(conversation, "hi")[1]


@database_sync_to_async
def row(message_id: int) -> Message:
    return Message.objects.get(pk=message_id)


@pytest.fixture
def quick_checkpoints(monkeypatch):
    monkeypatch.setattr(runner, "CHECKPOINT_EVERY", 0.01)


async def test_checkpoints_of_several_replies_are_saved_together(conversation, ann, quick_checkpoints):
    one = await new_reply(conversation)
    other_conversation = await database_sync_to_async(conversations.create_conversation)(ann, model="x/y")
    two = await new_reply(other_conversation)
    runner.checkpoints().put(one.pk, "Hel", 1, {})
    runner.checkpoints().put(one.pk, "Hello", 2, {})
    runner.checkpoints().put(two.pk, "Hi", 1, {"tool_calls": [{"step": 0}]})
    async with asyncio.timeout(10):
        while (await row(two.pk)).seq != 1 or (await row(one.pk)).seq != 2:
            await asyncio.sleep(0.01)
    assert (await row(one.pk)).content == "Hello"
    assert (await row(two.pk)).tool_calls == [{"step": 0}]


async def test_a_settled_reply_is_not_overwritten_by_a_checkpoint_it_had_queued(conversation, quick_checkpoints):
    reply = await new_reply(conversation)
    runner.checkpoints().put(reply.pk, "partial", 1, {})
    await runner.checkpoints().settle(reply.pk)
    await database_sync_to_async(Message.objects.filter(pk=reply.pk).update)(content="final", seq=9)
    runner.checkpoints().put(conversation.pk * 1000, "other", 1, {})
    await asyncio.sleep(0.1)
    assert ((await row(reply.pk)).content, (await row(reply.pk)).seq) == ("final", 9)


async def test_our_publishing_uses_the_channel_layers_own_group_channel():
    layer = get_channel_layer()
    group = frames.conversation_group(7)
    assert runner.pubsub_channel(group) == layer._get_group_channel_name(group)


async def test_group_publish_appends_before_it_publishes_and_reaches_the_group(conversation):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = frames.conversation_group(conversation.pk)
    await layer.group_add(group, channel)
    key = runner.deltas_key(123456)
    await runner.group_publish(group, {"type": "chat.delta", "seq": 1}, append=(key, "1\tx"))
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "chat.delta", "seq": 1}
    assert await runner.redis_client().lrange(key, 0, -1) == ["1\tx"]
    await layer.group_discard(group, channel)


async def test_publishes_of_many_replies_at_once_go_out_in_order_and_in_full(conversation):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = frames.conversation_group(conversation.pk)
    await layer.group_add(group, channel)
    keys = [runner.deltas_key(654320 + i) for i in range(5)]

    async def reply(key: str) -> None:
        for seq in range(1, 21):
            await runner.group_publish(
                group,
                {"type": "chat.delta", "key": key, "seq": seq},
                append=(key, f"{seq}\tx"),
                expire=None if seq > 1 else 60,
            )

    await asyncio.gather(*(reply(key) for key in keys))
    heard = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(100)]
    for key in keys:
        assert [m["seq"] for m in heard if m["key"] == key] == list(range(1, 21))
        assert await runner.redis_client().lrange(key, 0, -1) == [f"{seq}\tx" for seq in range(1, 21)]
        assert 0 < await runner.redis_client().ttl(key) <= 60
        await runner.redis_client().delete(key)
    await layer.group_discard(group, channel)


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
    assert await runner.redis_client().exists(runner.lease_key(mid))
    await socket.send({"action": "stop", "message_id": mid})
    await socket.until("done")
    await runner.drain()
    assert not await runner.redis_client().exists(runner.lease_key(mid))
    await socket.close()


@database_sync_to_async
def admitted_reply(conversation, ann):
    Budget.objects.create(user=ann, limit_usd=Decimal(5))
    ctx, _ = inspect.unwrap(consumers._send)(ann, conversation.pk, "hello", [])
    assert ctx.admission is not None
    return ctx


@database_sync_to_async
def settled(ctx):
    return list(LedgerEntry.objects.filter(user=ctx.user)), Hold.objects.get(pk=ctx.admission.hold_id)


@pytest.mark.parametrize("when", ["before it runs", "before the call"])
async def test_a_reply_stopped_before_its_admitted_call_settles_it_once_with_nothing_spent(conversation, ann, when):
    ctx = await admitted_reply(conversation, ann)
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
    await socket.send({"action": "send", "content": f"echo: {LONG} [[sim tps=20]]"})
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


async def test_frames_space_out_only_when_the_process_streams_more_than_its_frame_budget(monkeypatch):
    finished = asyncio.get_running_loop().create_future()
    finished.set_result(None)  # stands for a reply's task
    monkeypatch.setattr(runner, "_running", {})
    assert runner.frame_interval() == runner.COALESCE
    monkeypatch.setattr(runner, "_running", dict.fromkeys(range(200), finished))
    assert runner.frame_interval() == pytest.approx(200 / runner.FRAMES_PER_SECOND)
    monkeypatch.setattr(runner, "_running", dict.fromkeys(range(100_000), finished))
    assert runner.frame_interval() == runner.MAX_INTERVAL

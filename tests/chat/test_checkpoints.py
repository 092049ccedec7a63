"""chat.checkpoints: every streaming reply's row saved together, and never over the final write."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat import checkpoints, conversations
from chat.models import Message
from tests.helpers.chat import new_reply, row


async def streaming_reply(conversation) -> Message:
    """A new reply a runner is streaming (checkpoints only ever land on such a row)."""
    reply = await new_reply(conversation)
    await database_sync_to_async(Message.objects.filter(pk=reply.pk).update)(status=Message.Status.STREAMING)
    return reply


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drained")]


@pytest.fixture(autouse=True)
def quick_checkpoints(monkeypatch):
    monkeypatch.setattr(checkpoints, "CHECKPOINT_EVERY", 0.01)


async def test_checkpoints_of_several_replies_are_saved_together(conversation, owner):
    one = await streaming_reply(conversation)
    other_conversation = await database_sync_to_async(conversations.create_conversation)(owner, model="x/y")
    two = await streaming_reply(other_conversation)
    checkpoints.checkpoints().put(one.pk, "Hel", 1, {})
    checkpoints.checkpoints().put(one.pk, "Hello", 2, {})
    checkpoints.checkpoints().put(two.pk, "Hi", 1, {"tool_calls": [{"step": 0}]})
    async with asyncio.timeout(10):
        while (await row(two.pk)).seq != 1 or (await row(one.pk)).seq != 2:
            await asyncio.sleep(0.01)
    assert (await row(one.pk)).content == "Hello"
    assert (await row(two.pk)).tool_calls == [{"step": 0}]
    assert (await row(one.pk)).checkpointed is not None and (await row(two.pk)).checkpointed is not None


async def test_a_checkpoint_never_lands_on_a_finished_reply(conversation, owner):
    reply = await streaming_reply(conversation)
    await database_sync_to_async(Message.objects.filter(pk=reply.pk).update)(
        status=Message.Status.COMPLETE, content="final", seq=9
    )
    live = await streaming_reply(await database_sync_to_async(conversations.create_conversation)(owner, model="x/y"))
    checkpoints.checkpoints().put(reply.pk, "late", 10, {})
    checkpoints.checkpoints().put(live.pk, "Hi", 1, {})  # saved in the same batch
    async with asyncio.timeout(10):
        while (await row(live.pk)).seq != 1:
            await asyncio.sleep(0.01)
    assert ((await row(reply.pk)).content, (await row(reply.pk)).checkpointed) == ("final", None)


async def test_a_settled_reply_is_not_overwritten_by_a_checkpoint_it_had_queued(conversation):
    reply = await streaming_reply(conversation)
    checkpoints.checkpoints().put(reply.pk, "partial", 1, {})
    await checkpoints.checkpoints().settle(reply.pk)
    await database_sync_to_async(Message.objects.filter(pk=reply.pk).update)(content="final", seq=9)
    checkpoints.checkpoints().put(conversation.pk * 1000, "other", 1, {})
    await asyncio.sleep(0.1)
    assert ((await row(reply.pk)).content, (await row(reply.pk)).seq) == ("final", 9)

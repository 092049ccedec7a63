"""chat.broadcast: our own publishing to the channel layer's groups, batched, in order, with the deltas list.

The first two tests are the canary of the one library internal we rely on (RedisPubSubChannelLayer's
group channel names and serialisation): if channels_redis changes them, they fail here, by name, instead
of every tab silently hearing nothing.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from chat import broadcast, frames
from chat.deltas import deltas_key
from orweb.redis_clients import async_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drained")]

CHANGED = (
    "channels_redis no longer delivers what chat.broadcast publishes to its group channel: the library "
    "changed its group channel names or its serialisation. Update broadcast.pubsub_channel, or publish "
    "with group_send."
)


async def test_our_publishing_uses_the_channel_layers_own_group_channel():
    layer = get_channel_layer()
    group = frames.conversation_group(7)
    assert broadcast.pubsub_channel(group) is not None, "the tests' channel layer must take our own path"
    assert broadcast.pubsub_channel(group) == layer._get_group_channel_name(group), CHANGED


async def test_a_frame_our_publisher_sends_reaches_a_real_member_of_the_group(conversation):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = frames.conversation_group(conversation.pk)
    await layer.group_add(group, channel)
    message = {"type": "chat.frame", "frame": {"type": "title", "title": "Ünïcode ✓"}}
    await broadcast.publisher().send(broadcast.pubsub_channel(group), layer.serialize(message))
    try:
        heard = await asyncio.wait_for(layer.receive(channel), 5)
    except TimeoutError:
        pytest.fail(CHANGED)
    assert heard == message, CHANGED
    await layer.group_discard(group, channel)


async def test_group_publish_appends_before_it_publishes_and_reaches_the_group(conversation):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = frames.conversation_group(conversation.pk)
    await layer.group_add(group, channel)
    key = deltas_key(123456)
    await broadcast.group_publish(group, {"type": "chat.delta", "seq": 1}, append=(key, "1\tx"))
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "chat.delta", "seq": 1}
    assert await async_client().lrange(key, 0, -1) == ["1\tx"]
    await layer.group_discard(group, channel)


async def test_publishes_of_many_replies_at_once_go_out_in_order_and_in_full(conversation):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = frames.conversation_group(conversation.pk)
    await layer.group_add(group, channel)
    keys = [deltas_key(654320 + i) for i in range(5)]

    async def reply(key: str) -> None:
        for seq in range(1, 21):
            await broadcast.group_publish(
                group,
                {"type": "chat.delta", "key": key, "seq": seq},
                append=(key, f"{seq}\tx"),
                expire=None if seq > 1 else 60,
            )

    await asyncio.gather(*(reply(key) for key in keys))
    heard = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(100)]
    for key in keys:
        assert [m["seq"] for m in heard if m["key"] == key] == list(range(1, 21))
        assert await async_client().lrange(key, 0, -1) == [f"{seq}\tx" for seq in range(1, 21)]
        assert 0 < await async_client().ttl(key) <= 60
        await async_client().delete(key)
    await layer.group_discard(group, channel)

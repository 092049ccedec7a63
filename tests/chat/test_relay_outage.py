"""Redis is a relay, not the record: a reply streaming while Redis is killed and restarted keeps all its
text, ends "done", and is charged what the simulator billed; its tab hears the end once Redis is back."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from redis.exceptions import RedisError

from chat import lease
from chat.models import Message
from orweb.redis_clients import async_client
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.chat import Socket, deltas, row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drained")]

WORDS = " ".join(f"w{i}" for i in range(240))


async def test_a_redis_restart_mid_reply_keeps_all_of_its_text(conversation, simulator, own_redis):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": f"echo: {WORDS} [[sim tps=50]]"})
    first, _ = await socket.until("delta")
    mid = first["message_id"]

    own_redis.kill()
    await asyncio.sleep(2)  # the outage: the reply streams on meanwhile
    assert (await row(mid)).status == Message.Status.STREAMING
    own_redis.start()

    done, seen = await socket.until("done", timeout=90, message_id=mid)
    message = await row(mid)
    assert (message.status, done["status"]) == (Message.Status.COMPLETE, Message.Status.COMPLETE)
    assert message.content == WORDS
    assert "w239" in done["html"]
    seqs = [seq for seq, _ in deltas([first, *seen], mid)]
    assert seqs == sorted(set(seqs)) and seqs[-1] <= message.seq  # what the tab got live: in order, once
    generation = (await asyncio.to_thread(simulator.control, "GET", "billed")).json()["data"]
    assert [g["tokens_completion"] for g in generation] == [message.completion_tokens]
    await database_sync_to_async(assert_ledger_matches_simulator)(simulator)
    await socket.close()

    reopened = await Socket(conversation.user, conversation.pk).open()  # a tab that reconnects
    await reopened.send({"action": "resume", "message_id": mid, "after_seq": first["seq"]})
    again, _ = await reopened.until("done", message_id=mid)
    assert again["html"] == done["html"]
    await reopened.close()


async def test_a_reply_writes_its_lease_again_after_redis_lost_it(conversation, simulator, own_redis, monkeypatch):
    monkeypatch.setattr(lease, "LEASE_REFRESH", 0.1)
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": f"echo: {WORDS} [[sim tps=50]]"})
    first, _ = await socket.until("delta")
    own_redis.restart()
    async with asyncio.timeout(30):
        while not await _exists(lease.lease_key(first["message_id"])):
            await asyncio.sleep(0.05)
    await socket.send({"action": "stop", "message_id": first["message_id"]})
    await socket.until("done", timeout=60)
    await socket.close()


async def _exists(key: str) -> bool:
    try:
        return bool(await async_client().exists(key))
    except RedisError:
        return False

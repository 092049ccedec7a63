"""kill -9 of a real web process while /v1 streams and chat replies run through it: everything OpenRouter
billed for them reaches the ledger (from the dead process's journal, settled by the process started in
its place), every hold and stream slot is given back, and no reply stays "streaming"."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import redis
import websockets
from django.conf import settings
from django.utils import timezone

from billing.budgets import set_budget
from billing.models import Hold, LedgerEntry, RateLimit
from billing.reconcile import reconcile_pending
from chat.lease import LEASE_TTL
from chat.models import Conversation, Message
from chat.sweep import sweep_orphans
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import in_thread
from tests.helpers.personas import api_key

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai/gpt-4o-mini"


async def _v1_stream(web, key: str, started: asyncio.Event) -> None:
    body = {"model": MODEL, "stream": True, "max_tokens": 400, "messages": [{"role": "user", "content": "a story"}]}
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with (
            httpx.AsyncClient(timeout=30) as client,
            client.stream("POST", f"{web.url}/v1/chat/completions", json=body, headers=headers) as response,
        ):
            async for line in response.aiter_lines():
                if '"content"' in line:
                    started.set()
    except httpx.HTTPError:
        pass  # the server died under it


async def _chat_reply(web, cookie: str, conversation_id: int, started: asyncio.Event) -> str:
    """The reply's text as the tab saw it, until the server died."""
    url = f"ws://127.0.0.1:{web.port}/ws/chat/{conversation_id}/"
    headers = {"Cookie": cookie, "Origin": web.url}
    seen = ""
    try:
        async with websockets.connect(url, additional_headers=headers) as socket:
            await socket.send(json.dumps({"action": "send", "content": "a story"}))
            async for raw in socket:
                frame = json.loads(raw)
                if frame["type"] == "delta":
                    seen += frame["text"]
                    started.set()
    except (websockets.WebSocketException, OSError):
        pass
    return seen


def _settled_everything(simulator) -> bool:
    billed = set(simulator.billed())
    recorded = set(LedgerEntry.objects.exclude(generation_id=None).values_list("generation_id", flat=True))
    return billed <= recorded and not Hold.objects.filter(released_at=None).exists()


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "recovery did not finish in time"
        time.sleep(0.25)


async def test_a_web_process_killed_mid_stream_loses_no_charge(web, simulator, catalog, owner, owner_client):
    await in_thread(set_budget)(user=owner, amount=Decimal("5"))
    await in_thread(RateLimit.objects.create)(user=owner, concurrent_streams=20)
    key = await in_thread(api_key)(owner)
    conversations = [
        await in_thread(Conversation.objects.create)(user=owner, title=f"c{n}", model=MODEL) for n in range(3)
    ]
    simulator.configure(tps=15, reply_tokens=300)
    cookie = f"{settings.SESSION_COOKIE_NAME}={owner_client.cookies[settings.SESSION_COOKIE_NAME].value}"

    started = [asyncio.Event() for _ in range(6)]
    calls = [asyncio.create_task(_v1_stream(web, key, started[n])) for n in range(3)]
    calls += [
        asyncio.create_task(_chat_reply(web, cookie, conversation.pk, started[3 + n]))
        for n, conversation in enumerate(conversations)
    ]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), 60)

    web.kill()
    seen = (await asyncio.gather(*calls))[3:]
    assert await in_thread(Hold.objects.filter(released_at=None).count)() == 6  # nothing settled them

    web.start()  # the new process settles what the dead one journaled
    await in_thread(_wait)(lambda: _settled_everything(simulator), 60)

    def reconciled() -> bool:
        reconcile_pending(settle_delay=timedelta(0))
        return not LedgerEntry.objects.filter(cost_source="estimated").exists()

    await in_thread(_wait)(reconciled, 60)
    await in_thread(assert_ledger_matches_simulator)(simulator)
    assert len(simulator.billed()) == 6
    slots = redis.Redis.from_url(settings.REDIS_URL).zcard(f"orweb:streams:{owner.pk}")
    assert slots == 0
    entries = await in_thread(list)(LedgerEntry.objects.all())
    assert {entry.status for entry in entries} == {"incomplete"}
    assert all(entry.cost > 0 for entry in entries)

    # The replies it was streaming are finished once their leases lapse, with all the text that was relayed.
    def swept() -> bool:
        sweep_orphans(now=timezone.now() + timedelta(seconds=LEASE_TTL + 1))
        return not Message.objects.filter(status=Message.Status.STREAMING).exists()

    await in_thread(_wait)(swept, 60)
    replies = await in_thread(lambda: list(Message.objects.filter(role="assistant").order_by("conversation")))()
    assert [reply.status for reply in replies] == ["incomplete"] * 3
    assert all(reply.content.startswith(text) and text for reply, text in zip(replies, seen, strict=True))

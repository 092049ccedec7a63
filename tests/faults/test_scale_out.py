"""Scaled out on one machine, as `docker compose up --scale web=2 --scale worker=2` runs it (without Docker):
two web processes and two Celery workers on one PostgreSQL, one Redis and one shared file store. A reply
streamed through one web process is watched from a socket on the other and stopped from there; a /v1 call
goes through each; a batch job runs across both workers. Everything is metered once: the ledger holds
exactly what the simulator billed, by generation id, and no hold is left."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import websockets
from django.conf import settings

from billing.budgets import set_budget
from billing.models import Hold, LedgerEntry, RateLimit
from billing.reconcile import reconcile_pending
from chat.models import Conversation, Message
from tests.api.conftest import sdk
from tests.faults.conftest import WebProcess, server_env, wait_until
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import in_thread
from tests.helpers.personas import api_key

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai/gpt-4o-mini"
LINES = 24


@pytest.fixture
def shared(simulator, settings, journal_dir, tmp_path) -> dict[str, str]:
    """The environment every process of the deployment shares: database, Redis, simulator, file store."""
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"
    return server_env(simulator, settings, journal_dir, ORWEB_BATCH_DIR=str(settings.ORWEB_BATCH_DIR))


@pytest.fixture
def webs(shared):
    processes = [WebProcess(shared), WebProcess(shared)]
    for process in processes:
        process.start()
    yield processes
    for process in processes:
        process.stop()


@pytest.fixture
def workers(start_worker, shared):
    return [start_worker("celery,batches", ORWEB_BATCH_DIR=shared["ORWEB_BATCH_DIR"]) for _ in range(2)]


def _socket(web: WebProcess, cookie: str, conversation_id: int):
    url = f"ws://127.0.0.1:{web.port}/ws/chat/{conversation_id}/"
    return websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": web.url})


async def _next(socket, kind: str, timeout: float = 30) -> dict:
    async with asyncio.timeout(timeout):
        async for raw in socket:
            frame = json.loads(raw)
            if frame["type"] == kind:
                return frame
    raise AssertionError(f"the socket closed before a {kind!r} frame")


async def _stream_on_one_and_stop_from_the_other(webs, cookie: str, conversation_id: int) -> dict:
    first, second = webs
    async with _socket(first, cookie, conversation_id) as sender, _socket(second, cookie, conversation_id) as watcher:
        await sender.send(json.dumps({"action": "send", "content": "a long story"}))
        delta = await _next(watcher, "delta")  # relayed from the other process, through Redis
        await watcher.send(json.dumps({"action": "stop", "message_id": delta["message_id"]}))
        done = await _next(watcher, "done")
        sender_done = await _next(sender, "done")
    assert sender_done["message_id"] == done["message_id"] == delta["message_id"]
    return done


def _line(number: int) -> bytes:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"echo: line {number}"}], "max_tokens": 20}
    request = {"custom_id": f"line-{number}", "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(request).encode() + b"\n"


async def test_two_web_processes_and_two_workers_meter_everything_once(
    webs, workers, simulator, catalog, owner, owner_client
):
    await in_thread(set_budget)(user=owner, amount=Decimal("5"))
    await in_thread(RateLimit.objects.create)(user=owner, concurrent_streams=10)
    conversation = await in_thread(Conversation.objects.create)(user=owner, title="scaled", model=MODEL)
    cookie = f"{settings.SESSION_COOKIE_NAME}={owner_client.cookies[settings.SESSION_COOKIE_NAME].value}"
    simulator.configure(tps=20, reply_tokens=400)

    done = await _stream_on_one_and_stop_from_the_other(webs, cookie, conversation.pk)
    assert done["status"] == Message.Status.STOPPED
    reply = await in_thread(Message.objects.get)(pk=done["message_id"])
    assert reply.status == Message.Status.STOPPED and reply.content

    simulator.configure(tps=80, reply_tokens=None)  # the defaults again
    key = await in_thread(api_key)(owner)
    for web in webs:
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"echo: via {web.port}"}]}
            answer = await client.post(
                f"{web.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == f"via {web.port}"

    def run_batch() -> None:
        # Uploaded through one web process, run by both workers, read back through the other process.
        upload_side, read_side = (sdk(web, key) for web in webs)
        uploaded = upload_side.files.create(file=("lines.jsonl", b"".join(map(_line, range(LINES)))), purpose="batch")
        batch = upload_side.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 240
        while (state := read_side.batches.retrieve(batch.id)).status != "completed":
            assert state.status in ("validating", "in_progress", "finalizing"), state.status
            assert all(worker.poll() is None for worker in workers), "a worker died"
            assert time.monotonic() < deadline, f"still {state.status}: {state.request_counts}"
            time.sleep(0.25)
        assert state.request_counts.completed == LINES
        results = [json.loads(text) for text in read_side.files.content(state.output_file_id).read().splitlines()]
        assert [r["custom_id"] for r in results] == [f"line-{n}" for n in range(LINES)]

    await in_thread(run_batch)()

    def settled() -> bool:
        # The stopped reply's generation was settled at an estimate: reconciliation prices it from /generation.
        reconcile_pending(settle_delay=timedelta(0))
        estimated = LedgerEntry.objects.filter(cost_source=LedgerEntry.CostSource.ESTIMATED).exists()
        return not estimated and not Hold.objects.filter(released_at=None).exists()

    await in_thread(wait_until)(settled, 60, "a hold was left open or a cost stayed estimated")
    await in_thread(assert_ledger_matches_simulator)(simulator)
    sources = await in_thread(lambda: sorted(LedgerEntry.objects.values_list("source", flat=True)))()
    assert sources.count("batch") == LINES and sources.count("api") == 2 and "chat" in sources

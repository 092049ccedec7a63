"""/metrics: there only with a token, only for that token, and its numbers move with real calls through the
live app (the simulator upstream); what the database knows is read at scrape time; several processes add up."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing.models import Hold, LedgerEntry
from chat.models import Conversation
from orweb import metrics
from orweb.devstack import ROOT
from tests.api.conftest import key_of, sdk

MODEL = "openai/gpt-4o-mini"
TOKEN = "scrape-me-7f3a"


def scrape(live_app, token: str = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the page, by name and labels."""
    response = httpx.get(f"{live_app.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def api(live_app, catalog, owner) -> openai.OpenAI:
    """The official SDK with the owner's key, against the live app."""
    return sdk(live_app, key_of(owner).secret)


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.mark.django_db
def test_it_is_not_there_without_a_token_configured(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_it_refuses_a_missing_or_wrong_token(client, token):
    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    bare = client.get("/metrics", headers={"Authorization": TOKEN})

    assert missing.status_code == wrong.status_code == bare.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    assert "orweb_" not in wrong.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_real_call_moves_the_numbers(live_app, api, token):
    before = scrape(live_app)

    chunks = list(
        api.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "echo: count me"}], max_tokens=20, stream=True
        )
    )

    after = scrape(live_app)
    entry = LedgerEntry.objects.get(generation_id=chunks[0].id)
    moved = {key: after[key] - before.get(key, 0.0) for key in after}
    assert value(moved, "orweb_upstream_calls_total", model=MODEL, status="ok") == 1
    assert value(moved, "orweb_upstream_ttft_seconds_count", model=MODEL) == 1
    assert value(moved, "orweb_upstream_duration_seconds_count", model=MODEL) == 1
    assert value(moved, "orweb_tokens_total", source="api", model=MODEL, kind="prompt") == entry.prompt_tokens
    assert value(moved, "orweb_tokens_total", source="api", model=MODEL, kind="completion") == entry.completion_tokens
    assert value(moved, "orweb_settled_usd_total", source="api", model=MODEL) == pytest.approx(float(entry.cost))
    assert value(moved, "orweb_http_requests_total", route="/v1/chat/completions", status="200") == 1
    assert value(moved, "orweb_http_request_duration_seconds_count", route="/v1/chat/completions") == 1
    # The first scrape itself was counted, by its route, not its path.
    assert value(after, "orweb_http_requests_total", route="/metrics", status="200") >= 1
    assert {"orweb_holds_open", "orweb_holds_open_usd", "orweb_reconciliation_backlog"} <= {n for n, _ in after}


@pytest.mark.django_db(transaction=True)
def test_refusals_are_counted_by_code(live_app, api, token, settings):
    settings.ORWEB_DEFAULT_RPM = 1
    before = scrape(live_app)
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "echo: hi"}], "max_tokens": 5}
    api.chat.completions.create(**ask)

    with pytest.raises(openai.RateLimitError):
        api.chat.completions.create(**ask)

    after = scrape(live_app)
    assert (
        value(after, "orweb_refusals_total", source="api", code="rate_limited")
        - value(before, "orweb_refusals_total", source="api", code="rate_limited")
        == 1
    )
    assert value(after, "orweb_http_requests_total", route="/v1/chat/completions", status="429") >= 1


@pytest.mark.django_db(transaction=True)
def test_a_stream_counts_as_active_while_it_is_sent(live_app, api, token):
    baseline = value(scrape(live_app), "orweb_active_streams", kind="api")
    # One token, then upstream only keeps the connection alive: the reply is mid-stream until the client leaves.
    stalled = [{"role": "user", "content": "echo: one two three [[sim stall=120 stall_after=1]]"}]
    stream = api.chat.completions.create(model=MODEL, messages=stalled, max_tokens=20, stream=True)
    next(iter(stream))

    assert value(scrape(live_app), "orweb_active_streams", kind="api") == baseline + 1

    stream.close()
    deadline = time.monotonic() + 30
    while value(scrape(live_app), "orweb_active_streams", kind="api") != baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value(scrape(live_app), "orweb_active_streams", kind="api") == baseline


def test_a_tracked_coroutine_counts_while_it_runs():
    def gauge() -> float:
        return metrics.REGISTRY.get_sample_value("orweb_active_streams", {"kind": "test"}) or 0.0

    inside: list[float] = []

    @metrics.tracks_stream("test")
    async def reply() -> str:
        inside.append(gauge())
        raise RuntimeError("broke off")

    start = gauge()
    with pytest.raises(RuntimeError):
        asyncio.run(reply())

    assert inside == [start + 1]
    assert gauge() == start


@pytest.mark.django_db
def test_holds_and_the_reconciliation_backlog_are_read_from_the_database(client, token, owner):
    later = timezone.now() + dt.timedelta(minutes=5)
    Hold.objects.create(user=owner, amount=Decimal("0.25"), expires_at=later)
    Hold.objects.create(user=owner, amount=Decimal("0.50"), expires_at=later)
    Hold.objects.create(user=owner, amount=Decimal("9"), expires_at=later, released_at=timezone.now())
    LedgerEntry.objects.create(
        user=owner, source="api", requested_model=MODEL, cost_source="estimated", status="ok", generation_id="gen-1"
    )
    LedgerEntry.objects.create(
        user=owner, source="api", requested_model=MODEL, cost_source="reported", status="ok", generation_id="gen-2"
    )

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    samples = parse(response.content.decode())
    assert value(samples, "orweb_holds_open") == 2
    assert value(samples, "orweb_holds_open_usd") == 0.75
    assert value(samples, "orweb_reconciliation_backlog") == 1
    for name in ("orweb_batch_lines_queued", "orweb_batch_lines_running", "orweb_books_drift_usd"):
        assert value(samples, name) == 0
    assert value(samples, "orweb_celery_queue_depth_celery") >= 0


COUNT_A_CALL = """
from types import SimpleNamespace
from orweb import metrics
result = SimpleNamespace(served_model="m/x", requested_model="m/x", status="ok", ttft_ms=120, latency_ms=900,
                         prompt_tokens=10, completion_tokens={tokens}, cost="0.001")
metrics.observe_call("batch", result)
"""
SCRAPE = "import sys; from orweb import metrics; sys.stdout.write(metrics.exposition({}).decode())"


def test_several_processes_add_up_in_the_multiprocess_directory(tmp_path: Path):
    """Two processes (a web and a worker, say) count calls; a third, scraping, reports their sum. The files
    are named by host and process, so containers sharing the directory don't write to the same one."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for tokens in (5, 7):
        code = COUNT_A_CALL.format(tokens=tokens)
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)

    page = subprocess.run(
        [sys.executable, "-c", SCRAPE], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True, text=True
    )

    samples = parse(page.stdout)
    assert value(samples, "orweb_upstream_calls_total", model="m/x", status="ok") == 2
    assert value(samples, "orweb_tokens_total", source="batch", model="m/x", kind="completion") == 12
    assert value(samples, "orweb_settled_usd_total", source="batch", model="m/x") == pytest.approx(0.002)
    names = sorted(path.name for path in tmp_path.glob("counter_*.db"))
    assert len(names) == 2 and all(name.startswith(f"counter_{socket.gethostname()}-") for name in names)


async def test_an_open_chat_socket_counts_until_it_closes(live_app, token, owner, owner_client, settings):
    conversation = await sync_to_async(Conversation.objects.create)(user=owner, title="watched", model=MODEL)
    cookie = f"{settings.SESSION_COOKIE_NAME}={owner_client.cookies[settings.SESSION_COOKIE_NAME].value}"
    read = sync_to_async(lambda: value(scrape(live_app), "orweb_active_sockets"))
    baseline = await read()
    url = f"{live_app.ws_url}/ws/chat/{conversation.pk}/"
    async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": live_app.url}):
        deadline = time.monotonic() + 10
        while await read() != baseline + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await read() == baseline + 1
    deadline = time.monotonic() + 10
    while await read() != baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await read() == baseline

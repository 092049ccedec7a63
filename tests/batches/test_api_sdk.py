"""The official openai SDK's batch workflow against the live app and a real Celery worker on the batches
queue: files.create → batches.create → batches.retrieve until done → files.content of the output and error
files; batches.cancel of a running batch. Every line is charged once: the ledger holds exactly what the
simulator billed. Another user's results answer 404."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from django.db import connection

from batches.models import BatchJob
from billing.models import LedgerEntry
from openrouter.simulator.batch_api import BATCH_RATE
from orweb.celery import app as celery_app
from orweb.devstack import ROOT
from tests.api.conftest import key_of, sdk
from tests.conftest import SIM_KEY, database_url
from tests.faults.conftest import WebProcess, server_env
from tests.helpers.billing import assert_ledger_matches_simulator

pytestmark = pytest.mark.django_db(transaction=True)

FINISHED = ("completed", "failed", "cancelled", "expired")
TEXT = "meta-llama/llama-3.1-8b-instruct"


def line(custom_id: str, text: str, model: str = "openai/gpt-4o-mini") -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 50}
    request = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(request).encode() + b"\n"


@pytest.fixture
def worker(simulator, settings, tmp_path) -> Iterator[subprocess.Popen]:
    """A Celery worker of the batches and default queues, on the test's database, Redis and simulator."""
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"
    celery_app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "OPENROUTER_BASE_URL": simulator.base_url,
        "OPENROUTER_API_KEY": SIM_KEY,
        "ORWEB_BATCH_DIR": str(settings.ORWEB_BATCH_DIR),
    }
    command = [sys.executable, "-m", "celery", "-A", "orweb", "worker", "-l", "warning", "-P", "solo"]
    command += ["-Q", "celery,batches", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    yield process
    process.terminate()
    process.wait(20)


@pytest.fixture
def server(worker, simulator, settings) -> Iterator[WebProcess]:
    """orweb's real web server (`python -m orweb.serve`: daphne, with the request body limits per address)."""
    journal = Path(settings.ORWEB_JOURNAL_DIR)
    web = WebProcess(server_env(simulator, settings, journal, ORWEB_BATCH_DIR=str(settings.ORWEB_BATCH_DIR)))
    web.start()
    yield web
    web.stop()


@pytest.fixture
def api(live_app, catalog, owner) -> openai.OpenAI:
    return sdk(live_app, key_of(owner).secret)


def wait_until_finished(client: openai.OpenAI, batch_id: str, worker: subprocess.Popen, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while (batch := client.batches.retrieve(batch_id)).status not in FINISHED:
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, f"still {batch.status} after {timeout} s: {batch.request_counts}"
        time.sleep(0.25)
    return batch


def jsonl(content: bytes) -> list[dict]:
    return [json.loads(text) for text in content.splitlines()]


def test_the_sdk_runs_a_batch_and_downloads_its_results(worker, api, simulator):
    content = b"".join(line(f"req-{n}", f"echo: answer {n}") for n in range(3)) + b'{"custom_id": "req-3", "body": \n'
    uploaded = api.files.create(file=("requests.jsonl", content), purpose="batch")
    batch = api.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "in_progress"

    done = wait_until_finished(api, batch.id, worker)
    assert done.status == "completed" and done.completed_at >= done.in_progress_at
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 3, 1)

    output = api.files.with_raw_response.content(done.output_file_id)
    assert output.headers["content-disposition"].startswith("attachment;")
    results = jsonl(output.content)
    assert [r["custom_id"] for r in results] == ["req-0", "req-1", "req-2"]
    assert [r["response"]["body"]["choices"][0]["message"]["content"] for r in results] == [
        f"answer {n}" for n in range(3)
    ]
    assert all(r["response"]["status_code"] == 200 and r["error"] is None for r in results)
    costs = {r["response"]["body"]["id"]: Decimal(str(r["response"]["body"]["usage"]["cost"])) for r in results}
    ledger = {entry.generation_id: entry.cost for entry in LedgerEntry.objects.filter(source="batch")}
    assert ledger == costs and all(cost > 0 for cost in costs.values())
    assert_ledger_matches_simulator(simulator)

    errors = jsonl(api.files.content(done.error_file_id).read())
    assert len(errors) == 1 and errors[0]["error"]["message"]
    assert api.files.retrieve(done.output_file_id).purpose == "batch_output"
    assert api.files.retrieve(done.error_file_id).purpose == "batch_error"


def test_the_sdk_cancels_a_running_batch(worker, api, simulator):
    content = b"".join(line(f"req-{n}", f"[[sim ttft=0.5]] echo: slow {n}") for n in range(40))
    uploaded = api.files.create(file=("slow.jsonl", content), purpose="batch")
    batch = api.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.monotonic() + 60
    while api.batches.retrieve(batch.id).request_counts.completed == 0:
        assert time.monotonic() < deadline, "no line finished"
        time.sleep(0.1)

    assert api.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    done = wait_until_finished(api, batch.id, worker)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert 0 < done.request_counts.completed < 40
    results = jsonl(api.files.content(done.output_file_id).read()) if done.output_file_id else []
    assert len(results) == done.request_counts.completed
    assert_ledger_matches_simulator(simulator)
    with pytest.raises(openai.BadRequestError):
        api.batches.cancel(batch.id)


def test_the_sdk_asks_for_economy_mode_and_gets_the_batch_apis_price(worker, api, simulator):
    simulator.configure(batch_delay=0.2)
    content = b"".join(line(f"req-{n}", f"echo: cheap {n}", model=TEXT) for n in range(3))
    uploaded = api.files.create(file=("cheap.jsonl", content), purpose="batch")
    batch = api.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"orweb_economy": "true"},
    )
    assert batch.metadata == {"orweb_economy": "true"} and batch.to_dict()["orweb_economy"] is True

    done = wait_until_finished(api, batch.id, worker)
    assert (done.status, done.request_counts.completed) == ("completed", 3)
    results = jsonl(api.files.content(done.output_file_id).read())
    assert [r["response"]["body"]["choices"][0]["message"]["content"] for r in results] == [
        f"cheap {n}" for n in range(3)
    ]
    sent = simulator.app.state.batches[BatchJob.objects.get(pk=batch.id).remote_id]  # through the Batch API
    assert len(sent.requests) == 3
    model = simulator.app.state.sim.models[TEXT]
    for result in results:
        usage = result["response"]["body"]["usage"]
        list_price = usage["prompt_tokens"] * model.price("prompt") + usage["completion_tokens"] * model.price(
            "completion"
        )
        assert Decimal(str(usage["cost"])) == list_price * BATCH_RATE
    assert_ledger_matches_simulator(simulator)


@pytest.mark.parametrize("side", ["teammate", "outsider"])
def test_anothers_results_are_a_404(worker, api, live_app, request, side):
    uploaded = api.files.create(file=("one.jsonl", line("only", "echo: mine")), purpose="batch")
    batch = api.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = wait_until_finished(api, batch.id, worker)
    theirs = sdk(live_app, key_of(request.getfixturevalue(side)).secret)
    for call in (theirs.files.retrieve, theirs.files.content, theirs.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(done.output_file_id)
    with pytest.raises(openai.NotFoundError):
        theirs.batches.retrieve(batch.id)
    assert [r["custom_id"] for r in jsonl(api.files.content(done.output_file_id).read())] == ["only"]


def test_the_sdk_works_through_the_real_web_server(worker, server, catalog, owner):
    client = sdk(server, key_of(owner).secret)
    # About 12 MB: more than a /v1 JSON body may have, well within what a batch file may.
    big = b'{"prompt": "%s"}\n' % (b"question " * 110) * 12_000
    assert client.files.create(file=("big.jsonl", big), purpose="batch").bytes == len(big)

    uploaded = client.files.create(file=("two.jsonl", line("a", "echo: one") + line("b", "echo: two")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = wait_until_finished(client, batch.id, worker)
    assert (done.status, done.request_counts.completed) == ("completed", 2)
    results = jsonl(client.files.content(done.output_file_id).read())
    assert [r["response"]["body"]["choices"][0]["message"]["content"] for r in results] == ["one", "two"]

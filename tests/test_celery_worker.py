"""A real Celery worker, fed through the real Redis broker, reconciles an estimated cost.

The other reconciliation tests call the task's logic directly; this one proves the wiring: the gateway
enqueues the task when it writes an estimated row, and a separate worker process settles it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from billing.models import LedgerEntry
from gateway import metered
from orweb.celery import app as celery_app
from orweb.devstack import ROOT
from tests.conftest import SIM_KEY, database_url
from tests.helpers.metering import ask

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(simulator, settings):
    celery_app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "OPENROUTER_BASE_URL": simulator.base_url,
        "OPENROUTER_API_KEY": SIM_KEY,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orweb",
            "worker",
            "-l",
            "warning",
            "-P",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
    )
    yield process
    process.terminate()
    process.wait(20)


def test_a_worker_reconciles_an_estimated_cost(worker, simulator, catalog, owner):

    async def call():
        async with metered.stream(owner, ask("a story [[sim no_usage=1 tokens=30]]"), source="chat") as stream:
            [event async for event in stream]
        return stream.result

    result = async_to_sync(call)()
    entry = LedgerEntry.objects.get(generation_id=result.generation_id)
    assert entry.cost_source == "estimated"

    deadline = time.monotonic() + 90
    while entry.cost_source != "reconciled" and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.25)
        entry.refresh_from_db()
    assert entry.cost_source == "reconciled"
    billed = simulator.app.state.sim.generations[result.generation_id].cost
    assert entry.cost == Decimal(billed)

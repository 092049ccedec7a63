"""Money under concurrency, through the real API and two server processes: a user whose budget fits about
three requests fires twenty at once. The ones that fit succeed, the rest get 402, spent + held never
exceeds the limit, and the ledger charges exactly what OpenRouter (the simulator) reported."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import openai
import pytest
from django.db import connection
from django.db.models import Sum

from billing.budgets import set_budget
from billing.models import BudgetPeriod, LedgerEntry
from billing.pricing import worst_case
from catalog.models import CatalogModel
from gateway.policy import max_tokens_for, shape_of
from orweb.devstack import free_port, wait_for_port
from tests.api.conftest import sdk
from tests.conftest import SIM_KEY, database_url

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
MODEL = "openai/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Count to forty. [[sim tokens=40 ttft=0.3]]"}]
MAX_TOKENS = 200
REQUESTS = 20


@pytest.fixture
def second_server(simulator, live_app, settings):
    """orweb in its own process, on the same database, Redis and simulator as the in-thread app."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "OPENROUTER_BASE_URL": simulator.base_url,
        "OPENROUTER_API_KEY": SIM_KEY,
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "orweb.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


class Watcher(threading.Thread):
    """Reads the budget period over and over while the requests run; remembers the worst spent + held."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.worst = Decimal(0)
        self.samples = 0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for spent, held in BudgetPeriod.objects.values_list("spent", "held"):
                    self.worst = max(self.worst, spent + held)
                self.samples += 1
        finally:
            connection.close()


def test_twenty_at_once_on_a_budget_for_three(catalog, live_app, second_server, simulator, owner, owner_key):
    model, shape = CatalogModel.objects.get(pk=MODEL), shape_of(MESSAGES, MAX_TOKENS, {})
    per_request = worst_case(model, shape.prompt_tokens, max_tokens_for(model, shape), shape.images)
    limit = (per_request * Decimal("3.5")).quantize(Decimal("0.0001"))
    set_budget(user=owner, amount=limit)
    clients = [sdk(live_app, owner_key.secret), sdk(SimpleNamespace(url=second_server), owner_key.secret)]
    barrier = threading.Barrier(REQUESTS)

    def fire(n: int):
        barrier.wait()
        try:
            reply = clients[n % 2].chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS)
        except openai.APIStatusError as error:
            return error.status_code, error.message
        return 200, reply

    watcher = Watcher()
    watcher.start()
    with ThreadPoolExecutor(REQUESTS) as pool:
        outcomes = list(pool.map(fire, range(REQUESTS)))
    watcher.stop.set()
    watcher.join()

    statuses = Counter(status for status, _ in outcomes)
    assert set(statuses) == {200, 402}
    assert statuses[200] >= 3
    assert all("budget" in message for status, message in outcomes if status == 402)
    assert watcher.samples > 0 and watcher.worst <= limit

    period = BudgetPeriod.objects.get()
    assert period.held == 0 and period.spent <= limit
    ledger_total = LedgerEntry.objects.aggregate(total=Sum("cost"))["total"]
    reported = sum(g.cost for g in simulator.app.state.sim.generations.values())
    assert LedgerEntry.objects.count() == statuses[200] == len(simulator.app.state.sim.generations)
    assert ledger_total == reported == period.spent
    replies = [reply for status, reply in outcomes if status == 200]
    assert sum(Decimal(str(r.usage.model_extra["cost"])) for r in replies) == ledger_total

"""Twenty calls at once against a budget that fits three: three succeed, the rest get 402, never overspent."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from billing.budgets import set_budget
from billing.models import BudgetPeriod, LedgerEntry
from billing.pricing import worst_case
from catalog.models import CatalogModel
from gateway import metered
from gateway.policy import shape_of
from gateway.types import ChatRequest
from orweb.errors import BudgetExceeded

CALLS = 20


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_never_overspend(simulator, catalog, owner):
    messages = [{"role": "user", "content": "echo: a short answer [[sim ttft=0.4]]"}]
    shape = shape_of(messages, 1000, {})
    hold = worst_case(CatalogModel.objects.get(pk="openai/gpt-4o-mini"), shape.prompt_tokens, 1000)
    limit = (hold * Decimal("3.5")).quantize(Decimal("0.0001"))
    set_budget(user=owner, amount=limit)
    barrier = threading.Barrier(CALLS)
    outcomes: list[object] = []
    done = threading.Event()
    worst_seen: list[Decimal] = []

    def call():
        barrier.wait()
        try:
            request = ChatRequest(model="openai/gpt-4o-mini", messages=messages, max_tokens=1000)
            outcomes.append(async_to_sync(metered.complete)(owner, request, source="api"))
        except BudgetExceeded as refused:
            outcomes.append(refused)
        finally:
            connection.close()

    def watch():
        while not done.is_set():
            for period in BudgetPeriod.objects.all():
                worst_seen.append(period.spent + period.held)
        connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=call) for _ in range(CALLS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()

    succeeded = [o for o in outcomes if not isinstance(o, BudgetExceeded)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert (len(succeeded), len(refused)) == (3, CALLS - 3)
    assert all(r.status == 402 and r.budget == "monthly budget of user olivia" for r in refused)
    assert worst_seen and max(worst_seen) <= limit
    period = BudgetPeriod.objects.get()
    assert period.held == 0 and period.spent <= limit
    stats = simulator.stats()
    reported = Decimal(str(stats.get("data", stats)["usage"]))
    ledger_total = sum(LedgerEntry.objects.values_list("cost", flat=True), Decimal(0))
    assert ledger_total == period.spent == sum(c.result.cost for c in succeeded)
    assert abs(ledger_total - reported) < Decimal("1e-12")

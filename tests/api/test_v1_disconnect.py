"""A client that hangs up mid-stream: the upstream request is cancelled and what was generated is settled."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from billing.budgets import set_budget
from billing.models import BudgetPeriod, LedgerEntry

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(condition, timeout: float = 15.0):
    """Poll until `condition()` is truthy (the server settles after the socket closes, asynchronously)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
    return value


def test_hanging_up_cancels_upstream_and_settles_what_was_generated(api, simulator, owner):
    set_budget(user=owner, amount=Decimal("5"))
    stream = api.chat.completions.create(
        model="openai/gpt-4o-mini",
        max_tokens=1000,
        stream=True,
        messages=[{"role": "user", "content": "Tell me a long story [[sim tokens=800 tps=40]]"}],
    )
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
        if received == 3:
            break
    stream.close()

    entry = wait_for(lambda: LedgerEntry.objects.filter(status="cancelled").first())
    assert 0 < entry.completion_tokens < 800
    assert entry.cost > 0 and entry.source == "api"
    assert wait_for(lambda: simulator.stats()["cancelled_streams"]) == 1
    period = BudgetPeriod.objects.get()
    assert period.held == 0 and period.spent == entry.cost

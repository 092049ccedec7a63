"""Settling and reconciling at once, from many threads on the same budgets and rollup rows: every charge is
written once, no deadlock loses one, and the books add up. (Before one lock order, PostgreSQL reported
deadlocks between the settle statement and reconciliation, and each victim's ledger row was lost.)"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from billing import attempts
from billing.budgets import set_budget
from billing.holds import place_hold
from billing.ledger import Outcome, settle
from billing.models import (
    BudgetPeriod,
    DailyKeyUsage,
    DailyModelUsage,
    DailyPersonSourceUsage,
    DailyPersonUsage,
    DailyUsage,
    LedgerEntry,
)
from billing.reconcile import apply_generation

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8
ROUNDS = 25
MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o")


KEY = 7  # one API key for every call, so the key rollup's row is raced on too


def _outcome(user_id: int, model: str, cost: Decimal, source: str) -> Outcome:
    return Outcome(
        user_id=user_id,
        source="api",
        api_key_id=KEY,
        requested_model=model,
        served_model=model,
        status="ok",
        cost=cost,
        cost_source=source,
        generation_id=f"gen-{uuid.uuid4().hex}",
        completion_tokens=10,
    )


def test_settles_and_reconciliations_racing_on_the_same_rows_lose_nothing(owner, team_group):
    set_budget(user=owner, amount=Decimal("1000"))
    set_budget(group=Group.objects.get(pk=team_group.pk), amount=Decimal("1000"))
    estimated = [
        settle(
            _outcome(owner.pk, MODELS[n % 2], Decimal("0.001"), "estimated"), hold_id=place_hold(owner, Decimal(1)).pk
        )
        for n in range(THREADS * ROUNDS)
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work(number: int) -> None:
        try:
            barrier.wait()
            for round_ in range(ROUNDS):
                model = MODELS[(number + round_) % 2]
                hold = place_hold(owner, Decimal("0.5"))
                outcome = _outcome(owner.pk, model, Decimal("0.002"), "reported")
                entries = attempts.settle_attempt(
                    str(uuid.uuid4()), [outcome], hold_id=hold.pk, user_id=owner.pk, slot=None
                )
                assert entries is not None, "a settle was not written"
                apply_generation(estimated[number * ROUNDS + round_].pk, {"total_cost": "0.003"})
        except BaseException as error:  # noqa: BLE001 - reported to the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert attempts.journal().owing() == []
    count = THREADS * ROUNDS
    assert LedgerEntry.objects.filter(cost_source="reported").count() == count
    assert LedgerEntry.objects.filter(cost_source="reconciled").count() == count
    total = count * Decimal("0.002") + count * Decimal("0.003")
    for rollup in (DailyUsage, DailyModelUsage, DailyPersonUsage, DailyPersonSourceUsage, DailyKeyUsage):
        assert sum(rollup.objects.values_list("cost", flat=True)) == total, rollup.__name__
    for period in BudgetPeriod.objects.all():
        assert (period.spent, period.held) == (total, 0)

"""Estimated costs are replaced by what OpenRouter billed, once, with the rollup and budgets corrected."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from kombu.exceptions import OperationalError

from billing import reconcile
from billing.budgets import set_budget
from billing.models import BudgetPeriod, DailyUsage, LedgerEntry
from billing.reconcile import GenerationPending, apply_generation, reconcile_entry, reconcile_pending
from gateway import metered
from gateway.types import ChatRequest
from orweb import celery_app
from tests.helpers.billing import assert_ledger_matches_simulator

pytestmark = pytest.mark.django_db(transaction=True)


def _estimated_call(owner):
    request = ChatRequest(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "a long story [[sim no_usage=1 tokens=80]]"}],
    )

    async def run():
        async with metered.stream(owner, request, source="chat") as call:
            [event async for event in call]
        return call.result

    return async_to_sync(run)()


def _reconcile_when_ready(entry_id):
    """What the Celery task does: retry while OpenRouter answers 404."""
    for _ in range(200):
        try:
            return reconcile_entry(entry_id)
        except GenerationPending:
            time.sleep(0.02)
    raise AssertionError("the generation never became available")


def test_an_estimated_row_is_reconciled_from_the_generation_record(simulator, catalog, owner):
    set_budget(user=owner, amount=Decimal("1"))
    result = _estimated_call(owner)
    entry = LedgerEntry.objects.get()
    assert (entry.cost_source, entry.status) == ("estimated", "ok") and entry.cost > 0
    assert _reconcile_when_ready(entry.pk) is True
    stats = simulator.stats()
    billed = Decimal(str(stats.get("data", stats)["usage"]))
    entry.refresh_from_db()
    assert entry.cost_source == "reconciled" and entry.generation_id == result.generation_id
    assert abs(entry.cost - billed) < Decimal("1e-12")
    assert BudgetPeriod.objects.get().spent == entry.cost
    assert DailyUsage.objects.get().cost == entry.cost
    assert reconcile_entry(entry.pk) is False
    assert apply_generation(entry.pk, {"total_cost": 5}) is False
    assert BudgetPeriod.objects.get().spent == entry.cost


def test_pending_generations_are_left_for_later(simulator, catalog, owner):
    simulator.configure(generation_delay=30)
    _estimated_call(owner)
    entry = LedgerEntry.objects.get()
    with pytest.raises(GenerationPending):
        reconcile_entry(entry.pk)
    assert reconcile_pending() == 0  # younger than the settle delay: not even tried
    assert reconcile_pending(settle_delay=timedelta(0)) == 0
    assert LedgerEntry.objects.get().cost_source == "estimated"


def test_the_sweep_reconciles_what_is_ready(simulator, catalog, owner):
    simulator.configure(generation_delay=0)
    _estimated_call(owner)
    assert reconcile_pending(settle_delay=timedelta(0)) == 1
    assert LedgerEntry.objects.get().cost_source == "reconciled"


def test_a_generation_record_without_a_usable_cost_changes_nothing(simulator, catalog, owner):
    simulator.configure(generation_delay=0)
    set_budget(user=owner, amount=Decimal("1"))
    _estimated_call(owner)
    entry = LedgerEntry.objects.get()
    for unusable in (None, True, "lots", "NaN", "Infinity", "-0.01"):
        assert apply_generation(entry.pk, {"total_cost": unusable, "tokens_completion": 999}) is False
    assert LedgerEntry.objects.get().cost_source == "estimated"
    assert BudgetPeriod.objects.get().spent == DailyUsage.objects.get().cost == entry.cost
    assert reconcile_pending(settle_delay=timedelta(0)) == 1
    assert_ledger_matches_simulator(simulator)


def test_with_the_broker_down_an_estimate_waits_for_the_sweep(simulator, catalog, owner, monkeypatch, caplog):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    simulator.configure(generation_delay=0)
    monkeypatch.setattr(celery_app, "send_task", broker_down)
    set_budget(user=owner, amount=Decimal("1"))
    _estimated_call(owner)
    entry = LedgerEntry.objects.get()
    assert entry.cost_source == "estimated" and entry.cost > 0
    assert f"Could not enqueue the reconciliation of ledger entry {entry.pk}" in caplog.text
    assert reconcile_pending(settle_delay=timedelta(0)) == 1
    entry.refresh_from_db()
    assert entry.cost_source == "reconciled"
    assert BudgetPeriod.objects.get().spent == DailyUsage.objects.get().cost == entry.cost
    assert_ledger_matches_simulator(simulator)


def test_a_generation_openrouter_never_learns_of_is_settled_at_zero_after_a_day(simulator, catalog, owner, monkeypatch):
    set_budget(user=owner, amount=Decimal("1"))
    _estimated_call(owner)
    entry = LedgerEntry.objects.get()
    LedgerEntry.objects.filter(pk=entry.pk).update(generation_id="gen-never-billed")
    with pytest.raises(GenerationPending):
        reconcile_entry(entry.pk)  # a 404 is "not yet" for a day
    monkeypatch.setattr(reconcile, "NEVER_BILLED_AFTER", timedelta(0))  # as if a day had gone by
    assert reconcile_entry(entry.pk) is True
    entry.refresh_from_db()
    assert (entry.cost, entry.cost_source) == (0, "reconciled")
    assert BudgetPeriod.objects.get().spent == DailyUsage.objects.get().cost == 0

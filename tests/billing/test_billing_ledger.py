"""Settle: one ledger row per generation, written with the rollup and the budgets, charged once."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing.budgets import set_budget
from billing.holds import place_hold
from billing.ledger import Outcome, settle
from billing.models import BudgetPeriod, DailyUsage, LedgerEntry
from gateway.keys import create_key


def _outcome(owner, **fields):
    values = {
        "user_id": owner.pk,
        "source": "api",
        "requested_model": "openai/gpt-4o-mini",
        "served_model": "openai/gpt-4o-mini",
        "status": "ok",
        "cost": Decimal("0.0012"),
        "cost_source": "reported",
        "generation_id": "gen-1",
        "prompt_tokens": 10,
        "completion_tokens": 20,
    }
    return Outcome(**{**values, **fields})


@pytest.mark.django_db
def test_a_generation_settled_twice_is_charged_once(owner):
    set_budget(user=owner, amount=Decimal("1"))
    hold = place_hold(owner, Decimal("0.01"))
    first = settle(_outcome(owner), hold_id=hold.pk)
    again = settle(_outcome(owner, cost=Decimal("0.5")), hold_id=hold.pk)
    assert again.pk == first.pk and again.cost == Decimal("0.0012")
    period = BudgetPeriod.objects.get()
    assert (period.spent, period.held) == (Decimal("0.0012"), 0)
    rollup = DailyUsage.objects.get()
    assert (rollup.requests, rollup.cost, rollup.prompt_tokens, rollup.completion_tokens) == (
        1,
        Decimal("0.0012"),
        10,
        20,
    )


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_of_one_generation_are_charged_once(owner):
    set_budget(user=owner, amount=Decimal("1"))
    barrier = threading.Barrier(6)

    def deliver():
        barrier.wait()
        try:
            settle(_outcome(owner))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert LedgerEntry.objects.count() == 1
    assert BudgetPeriod.objects.get().spent == Decimal("0.0012")
    assert DailyUsage.objects.get().requests == 1


@pytest.mark.django_db
def test_rollups_add_up_per_day_model_and_source(owner):
    settle(_outcome(owner, generation_id="gen-1"))
    settle(_outcome(owner, generation_id="gen-2"))
    settle(_outcome(owner, generation_id=None, status="error", cost=Decimal(0), cost_source="none"))
    settle(_outcome(owner, generation_id="gen-3", source="chat"))
    api = DailyUsage.objects.get(source="api")
    assert (api.requests, api.errors, api.cost) == (3, 1, Decimal("0.0024"))
    assert DailyUsage.objects.get(source="chat").requests == 1
    assert LedgerEntry.objects.filter(generation_id=None).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_ledger_row_keeps_naming_its_api_key_after_the_key_is_gone(owner):
    key, _ = create_key(owner, "laptop")
    entry = settle(_outcome(owner, api_key_id=key.pk))
    key_id = key.pk
    key.delete()
    entry.refresh_from_db()
    assert entry.api_key_id == key_id


@pytest.mark.django_db
def test_the_ledger_names_api_keys_by_an_indexed_id_not_a_foreign_key():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, LedgerEntry._meta.db_table)
    on_key = [c for c in constraints.values() if c["columns"] == ["api_key_id"]]
    assert [(c["index"], c["foreign_key"]) for c in on_key] == [(True, None)]

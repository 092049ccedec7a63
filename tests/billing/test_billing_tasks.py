"""Billing's Celery tasks are thin: each runs its module's work (called directly, as a worker would)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from freezegun import freeze_time

from billing.budgets import current_period, set_budget
from billing.holds import place_hold
from billing.ledger import Outcome, settle
from billing.models import BudgetPeriod
from billing.tasks import budget_alerts, reconcile_estimated, release_expired_holds

pytestmark = pytest.mark.django_db


def test_the_hold_sweep_releases_the_holds_of_crashed_calls(owner):
    set_budget(user=owner, amount=Decimal("1"))
    with freeze_time("2026-03-01 12:00"):
        place_hold(owner, Decimal("0.5"))
    with freeze_time("2026-03-01 12:30"):
        assert release_expired_holds() == 1
    assert BudgetPeriod.objects.get().held == 0


def test_reconciliation_leaves_a_reported_cost_alone(owner):
    entry = settle(
        Outcome(
            user_id=owner.pk,
            source="api",
            requested_model="m",
            status="ok",
            cost=Decimal("0.002"),
            cost_source="reported",
            generation_id="gen-reported",
        )
    )
    assert reconcile_estimated(entry.pk) == 0
    assert reconcile_estimated() == 0


def test_budget_alerts_are_sent(owner):
    owner.email = "olivia@example.com"
    owner.save()
    period = current_period(set_budget(user=owner, amount=Decimal("1")))
    period.spent = Decimal("0.9")
    period.save()
    assert budget_alerts() == 1
    assert mail.outbox[0].to == ["olivia@example.com"]

"""A budget counts what its owner already spent in the period, whenever it was set: set mid-month, or
removed and set again, it doesn't start from zero."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from freezegun import freeze_time

from billing.budgets import remaining_for, set_budget, status_for
from billing.ledger import Outcome, settle
from billing.models import Budget

pytestmark = pytest.mark.django_db


def _spend(user, amount: str) -> None:
    settle(Outcome(user_id=user.pk, source="api", requested_model="m", status="ok", cost=Decimal(amount)))


def test_a_budget_set_mid_period_counts_what_was_already_spent(owner):
    with freeze_time("2026-11-03 10:00"):
        _spend(owner, "3")
    with freeze_time("2026-10-30 10:00"):
        _spend(owner, "50")  # last month: not this period's
    with freeze_time("2026-11-20 10:00"):
        set_budget(user=owner, amount=Decimal("5"))
        assert remaining_for(owner) == Decimal("2")
        [status] = status_for(owner)
        assert status.spent == Decimal("3")


def test_removing_and_setting_a_budget_again_does_not_reset_it(owner):
    with freeze_time("2026-11-20 10:00"):
        set_budget(user=owner, amount=Decimal("5"))
        _spend(owner, "4")
        assert remaining_for(owner) == Decimal("1")
        Budget.objects.filter(user=owner).delete()
        set_budget(user=owner, amount=Decimal("5"))
        assert remaining_for(owner) == Decimal("1")


def test_a_group_budget_counts_what_its_members_spent_this_period(owner, teammate, team_group):
    with freeze_time("2026-11-20 10:00"):
        _spend(owner, "1.5")
        _spend(teammate, "2")
        set_budget(group=Group.objects.get(pk=team_group.pk), amount=Decimal("10"), period="week")
        assert remaining_for(owner) == Decimal("6.5")
    with freeze_time(dt.datetime(2026, 11, 23, 0, 0, 1, tzinfo=dt.UTC)):  # Monday: a new week
        assert remaining_for(owner) == Decimal("10")

"""The header's spend line: this month's spend (from the rollup per day and person that settling writes with
each ledger row) and the tightest budget, read in one statement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from freezegun import freeze_time

from billing.budgets import current_period, status_for
from billing.ledger import Outcome, settle
from billing.models import Budget, LedgerEntry, Period
from billing.spend import spend_summary

pytestmark = pytest.mark.django_db


def _spent(user, cost, when=None):
    with freeze_time(when or timezone.now()):
        settle(
            Outcome(
                user_id=user.pk,
                source="chat",
                requested_model="x/y",
                status="ok",
                cost=Decimal(cost),
                cost_source=LedgerEntry.CostSource.REPORTED,
            )
        )


def test_no_budget_shows_only_this_months_spend(owner):
    _spent(owner, "0.25")
    _spent(owner, "0.5")
    _spent(owner, "9", when=timezone.now() - dt.timedelta(days=40))

    summary = spend_summary(owner)

    assert (summary.spent, summary.remaining, summary.budget) == (Decimal("0.75"), None, None)


def test_the_tightest_budget_is_the_one_shown_as_status_for_says(owner, django_assert_num_queries):
    group = Group.objects.create(name="team")
    group.user_set.add(owner)
    own = Budget.objects.create(user=owner, limit_usd=Decimal(10), period=Period.MONTH)
    team = Budget.objects.create(group=group, limit_usd=Decimal(3), period=Period.DAY)
    daily = current_period(team)
    daily.spent, daily.held = Decimal("1.25"), Decimal("0.5")
    daily.save()
    monthly = current_period(own)
    monthly.spent = Decimal("8.5")
    monthly.save()

    with django_assert_num_queries(1):
        summary = spend_summary(owner)

    tightest = status_for(owner)[0]
    assert (summary.remaining, summary.budget) == (tightest.remaining, tightest.label)
    assert (summary.remaining, summary.budget) == (Decimal("1.25"), "daily budget of group team")


def test_a_budget_without_a_period_row_yet_has_its_whole_limit_left(owner):
    Budget.objects.create(user=owner, limit_usd=Decimal(2), period=Period.WEEK)

    summary = spend_summary(owner)

    assert (summary.remaining, summary.budget) == (Decimal(2), "weekly budget of user olivia")

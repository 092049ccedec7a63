"""Settled calls show in the spend reports: this month, today, per day and per person, across a month
boundary."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from freezegun import freeze_time

from billing.ledger import Outcome, settle
from billing.reports import daily_spend, team_spend, usage_summary

pytestmark = pytest.mark.django_db


def _spend(owner, generation_id, cost):
    settle(
        Outcome(
            user_id=owner.pk,
            source="api",
            requested_model="m",
            served_model="m",
            status="ok",
            cost=Decimal(cost),
            cost_source="reported",
            generation_id=generation_id,
        )
    )


def test_settled_calls_show_in_this_months_and_todays_spend_and_per_day(owner, teammate):
    with freeze_time("2026-02-27 10:00"):
        _spend(owner, "gen-feb", "0.5")
    with freeze_time("2026-03-02 10:00"):
        _spend(owner, "gen-mar-1", "0.25")
        _spend(teammate, "gen-other", "9")
    with freeze_time("2026-03-03 10:00"):
        _spend(owner, "gen-mar-2", "0.125")
        summary = usage_summary(owner)
        assert (summary.this_month, summary.today, summary.period_spend) == (
            Decimal("0.375"),
            Decimal("0.125"),
            Decimal("0.375"),
        )
        days = daily_spend(owner, days=5)
        assert [(d.day, d.cost, d.requests) for d in days if d.requests] == [
            (dt.date(2026, 2, 27), Decimal("0.5"), 1),
            (dt.date(2026, 3, 2), Decimal("0.25"), 1),
            (dt.date(2026, 3, 3), Decimal("0.125"), 1),
        ]
        assert {line.username: line.this_month for line in team_spend()} == {
            "tomas": Decimal("9"),
            "olivia": Decimal("0.375"),
        }

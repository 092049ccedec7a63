from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from freezegun import freeze_time

from billing.ledger import Outcome, settle
from billing.spend import daily_spend, user_period_spend

pytestmark = pytest.mark.django_db


def _spend(member, generation_id, cost):
    settle(
        Outcome(
            user_id=member.pk,
            source="api",
            requested_model="m",
            served_model="m",
            status="ok",
            cost=Decimal(cost),
            cost_source="reported",
            generation_id=generation_id,
        )
    )


def test_period_spend_and_daily_rows(member, django_user_model):
    other = django_user_model.objects.create_user("other")
    with freeze_time("2026-02-27 10:00"):
        _spend(member, "gen-feb", "0.5")
    with freeze_time("2026-03-02 10:00"):
        _spend(member, "gen-mar-1", "0.25")
        _spend(other, "gen-other", "9")
    with freeze_time("2026-03-03 10:00"):
        _spend(member, "gen-mar-2", "0.125")
        assert user_period_spend(member) == Decimal("0.375")
        assert user_period_spend(member, "day") == Decimal("0.125")
        rows = daily_spend(member, days=5)
        assert [(r["day"], r["cost"], r["requests"]) for r in rows] == [
            (dt.date(2026, 2, 27), Decimal("0.5"), 1),
            (dt.date(2026, 3, 2), Decimal("0.25"), 1),
            (dt.date(2026, 3, 3), Decimal("0.125"), 1),
        ]
        assert daily_spend(days=2)[0]["cost"] == Decimal("9.25")

"""The usage page: each budget that applies with what is spent, held and left; spend per day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from billing.budgets import current_period, set_budget, today
from billing.reports import daily_spend, usage_summary
from tests.billing.rollups import add_usage

pytestmark = pytest.mark.django_db

USAGE = reverse("account:usage")


@pytest.fixture(autouse=True)
def _mid_month():
    """A fixed moment, so a run across midnight or the 1st sees one "today" throughout."""
    with freeze_time("2026-03-18 10:00"):
        yield


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _spent(user, cost, *, days_ago=0, model="a", requests=1):
    add_usage(today() - dt.timedelta(days=days_ago), user, model, source="api", requests=requests, cost=Decimal(cost))


def test_it_requires_sign_in(owner):
    assert Client().get(USAGE).status_code == 302


def test_it_shows_each_budget_with_spent_held_and_remaining(owner):
    budget = set_budget(user=owner, amount=Decimal("10"))
    period = current_period(budget)
    period.spent, period.held = Decimal("2.5"), Decimal("0.5")
    period.save()
    _spent(owner, "2.5", requests=3)
    response = _signed_in(owner).get(USAGE)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Monthly budget of user olivia" in page
    assert "$10.00" in page and "$2.50" in page and "$0.50" in page and "$7.00" in page
    assert "Mar 1 – Apr 1" in page
    assert response.context["summary"].period_spend == Decimal("2.5")
    assert "style=" not in page


def test_a_tiny_budget_keeps_the_digits_it_needs(owner):
    budget = set_budget(user=owner, amount=Decimal("0.0005"))
    period = current_period(budget)
    period.spent = Decimal("0.0004")
    period.save()
    page = _signed_in(owner).get(USAGE).content.decode()
    assert "<td>$0.0005</td>" in page and "$0.0004" in page and "$0.0001" in page
    assert "$0.00<" not in page


def test_without_a_budget_it_says_spending_is_not_capped(owner):
    assert "not capped" in _signed_in(owner).get(USAGE).content.decode()


def test_the_chart_has_every_one_of_the_last_30_days_scaled_to_the_busiest(owner, teammate):
    _spent(owner, "1")
    _spent(owner, "1", model="b")
    _spent(owner, "0.5", days_ago=1, requests=2)
    _spent(teammate, "9")
    days = daily_spend(owner)
    assert len(days) == 30 and days[0].day == dt.date(2026, 2, 17) and days[-1].day == dt.date(2026, 3, 18)
    assert (days[-1].cost, days[-1].requests, days[-1].level) == (Decimal(2), 2, 20)
    assert days[-2].level == 5 and days[0].level == 0


def test_on_the_first_of_the_month_today_and_this_month_start_again(owner):
    weekly = set_budget(user=owner, amount=Decimal("5"), period="week")
    with freeze_time("2026-03-31 23:59"):  # a Tuesday
        _spent(owner, "2")
    with freeze_time("2026-04-01 00:01"):
        _spent(owner, "0.25")
        summary = usage_summary(owner)
        page = _signed_in(owner).get(USAGE).content.decode()
    assert (summary.today, summary.this_month) == (Decimal("0.25"), Decimal("0.25"))
    assert summary.period_spend == Decimal("2.25")  # the weekly budget's week began on Monday, March 30
    assert summary.budgets[0].budget_id == weekly.pk and summary.budgets[0].period_start == dt.date(2026, 3, 30)
    assert summary.days[-1].day == dt.date(2026, 4, 1) and summary.days[-2].cost == Decimal("2")
    assert "Mar 30 – Apr 6" in page

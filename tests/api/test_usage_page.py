"""The usage page: each budget that applies with what is spent, held and left; spend per day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from billing.budgets import current_period, set_budget, today
from billing.models import DailyUsage
from gateway.account import daily_spend

pytestmark = pytest.mark.django_db

USAGE = reverse("account:usage")


def test_it_requires_sign_in(owner):
    assert Client().get(USAGE).status_code == 302


def test_it_shows_each_budget_with_spent_held_and_remaining(owner):
    budget = set_budget(user=owner.user, amount=Decimal("10"))
    period = current_period(budget)
    period.spent, period.held = Decimal("2.5"), Decimal("0.5")
    period.save()
    DailyUsage.objects.create(day=today(), user=owner.user, model="m", source="api", requests=3, cost=Decimal("2.5"))
    client = Client()
    client.force_login(owner.user)
    response = client.get(USAGE)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Monthly budget of user alice" in page
    assert "$10.00" in page and "$2.5000" in page and "$0.5000" in page and "$7.0000" in page
    assert response.context["summary"].period_spend == Decimal("2.5")
    assert "style=" not in page


def test_without_a_budget_it_says_spending_is_not_capped(owner):
    client = Client()
    client.force_login(owner.user)
    assert "not capped" in client.get(USAGE).content.decode()


def test_the_chart_has_every_one_of_the_last_30_days_scaled_to_the_busiest(owner, other):
    def spent(user, model, cost, *, days_ago=0, requests=1):
        DailyUsage.objects.create(
            day=today() - dt.timedelta(days=days_ago),
            user=user,
            model=model,
            source="api",
            requests=requests,
            cost=Decimal(cost),
        )

    spent(owner.user, "a", "1")
    spent(owner.user, "b", "1")
    spent(owner.user, "a", "0.5", days_ago=1, requests=2)
    spent(other.user, "a", "9")
    days = daily_spend(owner.user)
    assert len(days) == 30 and days[-1].day == today()
    assert (days[-1].cost, days[-1].requests, days[-1].level) == (Decimal(2), 2, 20)
    assert days[-2].level == 5 and days[0].level == 0

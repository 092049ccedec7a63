"""The team page: staff see what everyone spent this month, with budgets, as a page and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from billing.budgets import current_period, set_budget, today
from billing.models import Budget
from console.models import AuditEvent
from tests.billing.rollups import add_usage
from tests.helpers.personas import signed_in

pytestmark = pytest.mark.django_db

MID_MONTH = "2026-03-18 10:00"  # UTC, as budgets and the rollup count days

TEAM = reverse("account:team")
TEAM_CSV = reverse("account:team_csv")
BUDGET = reverse("account:team_budget")


def _used(user, cost, *, days_ago=0, requests=1, errors=0, model="m", source="chat"):
    add_usage(
        today() - dt.timedelta(days=days_ago),
        user,
        model,
        source=source,
        requests=requests,
        errors=errors,
        cost=Decimal(cost),
    )


@pytest.fixture(autouse=True)
def _mid_month():
    """A fixed day, so "today" and "this month" mean the same on every run."""
    with freeze_time(MID_MONTH):
        yield


def test_it_is_for_staff_only(owner_client):
    assert Client().get(TEAM).status_code == 302
    assert owner_client.get(TEAM).status_code == 403
    assert owner_client.get(TEAM_CSV).status_code == 403
    assert Client().get(TEAM_CSV).status_code == 302


def test_it_shows_each_persons_month_today_calls_and_budget_biggest_first(owner, teammate, staff_client):
    _used(owner, "1.50", requests=3, errors=1)
    _used(owner, "0.25", requests=1, source="api")
    _used(teammate, "4.00", requests=2, days_ago=1)
    _used(teammate, "9.99", days_ago=40)  # last month: not counted
    budget = set_budget(user=teammate, amount=Decimal("5"))
    period = current_period(budget)
    period.spent = Decimal("4.5")
    period.save()

    response = staff_client.get(TEAM)

    assert response.status_code == 200
    lines = response.context["lines"]
    assert [line.username for line in lines] == ["tomas", "olivia", "stella"]
    teammate_line, owner_line, staff_line = lines
    assert (owner_line.this_month, owner_line.today, owner_line.requests, owner_line.errors) == (
        Decimal("1.75"),
        Decimal("1.75"),
        4,
        1,
    )
    assert teammate_line.this_month == Decimal("4.00") and teammate_line.level == 20 and owner_line.level == 8
    assert (teammate_line.limit, teammate_line.remaining, teammate_line.near_limit) == (
        Decimal("5"),
        Decimal("0.5"),
        True,
    )
    assert staff_line.this_month == 0 and staff_line.budget is None
    assert response.context["total"] == Decimal("5.75")
    page = response.content.decode()
    assert "Monthly budget of user tomas" in page and "uncapped" in page
    assert "style=" not in page


def test_it_shows_the_models_that_cost_the_most_this_month(owner, teammate, staff_client):
    _used(owner, "1.5", model="openai/gpt-4o", requests=2)
    _used(teammate, "0.5", model="openai/gpt-4o", source="api", requests=1)
    _used(teammate, "0.25", model="openai/gpt-4o-mini", requests=9)
    _used(teammate, "7", model="anthropic/claude-3-opus", days_ago=40)  # last month

    models = staff_client.get(TEAM).context["models"]

    assert [(m.model, m.cost, m.requests, m.level) for m in models] == [
        ("openai/gpt-4o", Decimal("2.0"), 3, 20),
        ("openai/gpt-4o-mini", Decimal("0.25"), 9, 2),
    ]


def test_an_empty_month_says_so(staff_client):
    page = staff_client.get(TEAM).content.decode()
    assert "Nobody has spent anything this month yet" in page


def test_the_csv_has_a_row_per_person_and_neutralises_formulas(owner, teammate, staff_client, django_user_model):
    sneaky = django_user_model.objects.create_user("=cmd@x", password="x")
    _used(owner, "2")
    _used(sneaky, "1")

    response = staff_client.get(TEAM_CSV)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["user", "active", "spent_this_month_usd"]
    by_user = {row[0]: row for row in rows[1:]}
    assert set(by_user) == {"olivia", "'=cmd@x", "stella", "tomas"}
    assert by_user["olivia"][2] == "2" and by_user["olivia"][4] == "1"


def test_the_csv_writes_exact_plain_amounts(owner, teammate, staff_client):
    _used(owner, "0.0000001")
    set_budget(user=teammate, amount=Decimal("0.0005"))

    rows = list(csv.reader(io.StringIO(staff_client.get(TEAM_CSV).content.decode())))

    by_user = {row[0]: row for row in rows[1:]}
    assert by_user["olivia"][2:4] == ["0.0000001", "0.0000001"]
    assert by_user["tomas"][2:4] == ["0", "0"] and by_user["tomas"][7:] == ["0.0005", "0.0005"]
    assert by_user["stella"][7:] == ["", ""]


def test_small_amounts_keep_the_digits_they_need(owner, teammate, staff_client):
    _used(owner, "0.0004")
    set_budget(user=teammate, amount=Decimal("0.0005"))

    page = staff_client.get(TEAM).content.decode()

    assert "Monthly budget of user tomas, $0.0005" in page
    assert "$0.0004" in page and "$0.00<" not in page
    response = staff_client.post(BUDGET, {"user": "olivia", "amount": "0.0005", "period": "day"}, follow=True)
    assert "Set the daily budget of user olivia: $0.0005." in response.content.decode()


def test_on_the_first_of_the_month_only_the_new_month_counts(staff, owner, teammate):
    with freeze_time("2026-03-31 23:30"):
        _used(owner, "3", model="openai/gpt-4o")
    with freeze_time("2026-04-01 00:30"):
        _used(teammate, "0.5", model="openai/gpt-4o-mini")
        client = signed_in(staff)
        context = client.get(TEAM).context
        filename = client.get(TEAM_CSV)["Content-Disposition"]

    lines = {line.username: line for line in context["lines"]}
    assert lines["olivia"].this_month == 0
    assert (lines["tomas"].this_month, lines["tomas"].today) == (Decimal("0.5"), Decimal("0.5"))
    assert context["total"] == Decimal("0.5")
    assert [model.model for model in context["models"]] == ["openai/gpt-4o-mini"]
    assert 'filename="orweb-spend-2026-04.csv"' in filename


def test_staff_see_a_team_link_and_others_do_not(staff_client, owner_client):
    usage = reverse("account:usage")
    assert TEAM in staff_client.get(usage).content.decode()
    assert TEAM not in owner_client.get(usage).content.decode()


def test_staff_set_change_and_remove_a_persons_budget(staff, owner, staff_client):
    client = staff_client

    response = client.post(BUDGET, {"user": "olivia", "amount": "12.5", "period": "week"}, follow=True)
    assert response.redirect_chain == [(TEAM, 302)]
    assert "Set the weekly budget of user olivia: $12.50." in response.content.decode()
    assert (owner.budget.limit_usd, owner.budget.period) == (Decimal("12.5"), "week")

    client.post(BUDGET, {"user": "olivia", "amount": "3", "period": "month"})
    owner.refresh_from_db()
    assert (owner.budget.limit_usd, owner.budget.period) == (Decimal("3"), "month")

    client.post(BUDGET, {"user": "olivia", "amount": "", "period": "month"})
    assert not Budget.objects.filter(user=owner).exists()
    response = client.post(BUDGET, {"user": "olivia", "amount": "", "period": "month"}, follow=True)
    assert "olivia has no budget of their own." in response.content.decode()

    history = AuditEvent.objects.order_by("at", "id")
    week = {"owner": "person olivia", "limit_usd": "12.5", "period": "week", "alert_percent": 80}
    month = {**week, "limit_usd": "3", "period": "month"}
    assert [(e.actor_name, e.action, e.target_id, e.before, e.after) for e in history] == [
        ("stella", "budget.change", f"person:{owner.pk}", None, week),
        ("stella", "budget.change", f"person:{owner.pk}", week, month),
        ("stella", "budget.change", f"person:{owner.pk}", month, None),
    ]
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"user": "olivia", "amount": "-1"}, "greater than or equal to 0"),
        ({"user": "olivia", "amount": "lots"}, "Enter a number"),
        ({"user": "olivia", "amount": "1e400"}, "Ensure that there are no more than"),
        ({"user": "nobody", "amount": "5"}, "No active person has that name"),
        ({"user": "olivia", "amount": "5", "period": "year"}, "Select a valid choice"),
    ],
)
def test_a_bad_budget_is_refused_with_a_reason_and_changes_nothing(owner, staff_client, fields, message):
    response = staff_client.post(BUDGET, {"period": "month", **fields})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Budget.objects.exists()


def test_only_staff_set_budgets_and_only_by_post_with_a_csrf_token(staff, owner_client, staff_client):
    assert owner_client.post(BUDGET, {"user": "olivia", "amount": "999"}).status_code == 403
    assert staff_client.get(BUDGET).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert strict.post(BUDGET, {"user": "olivia", "amount": "1", "period": "month"}).status_code == 403
    assert not Budget.objects.exists()

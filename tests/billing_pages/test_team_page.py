"""The team page: staff see what everyone spent this month, with budgets, as a page and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from billing.budgets import current_period, set_budget, today
from billing.models import Budget, DailyUsage

pytestmark = pytest.mark.django_db

MID_MONTH = "2026-03-18 10:00"  # UTC, as budgets and the rollup count days

TEAM = reverse("account:team")
TEAM_CSV = reverse("account:team_csv")
BUDGET = reverse("account:team_budget")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _used(user, cost, *, days_ago=0, requests=1, errors=0, model="m", source="chat"):
    DailyUsage.objects.create(
        day=today() - dt.timedelta(days=days_ago),
        user=user,
        model=model,
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


@pytest.fixture
def team(django_user_model):
    boss = django_user_model.objects.create_user("boss", password="x", is_staff=True)
    ann = django_user_model.objects.create_user("ann", password="x")
    bob = django_user_model.objects.create_user("bob", password="x")
    return boss, ann, bob


def test_it_is_for_staff_only(team):
    _, ann, _ = team
    assert Client().get(TEAM).status_code == 302
    assert _client(ann).get(TEAM).status_code == 403
    assert _client(ann).get(TEAM_CSV).status_code == 403
    assert Client().get(TEAM_CSV).status_code == 302


def test_it_shows_each_persons_month_today_calls_and_budget_biggest_first(team):
    boss, ann, bob = team
    _used(ann, "1.50", requests=3, errors=1)
    _used(ann, "0.25", requests=1, source="api")
    _used(bob, "4.00", requests=2, days_ago=1)
    _used(bob, "9.99", days_ago=40)  # last month: not counted
    budget = set_budget(user=bob, amount=Decimal("5"))
    period = current_period(budget)
    period.spent = Decimal("4.5")
    period.save()

    response = _client(boss).get(TEAM)

    assert response.status_code == 200
    lines = response.context["lines"]
    assert [line.username for line in lines] == ["bob", "ann", "boss"]
    bob_line, ann_line, boss_line = lines
    assert (ann_line.this_month, ann_line.today, ann_line.requests, ann_line.errors) == (
        Decimal("1.75"),
        Decimal("1.75"),
        4,
        1,
    )
    assert bob_line.this_month == Decimal("4.00") and bob_line.level == 20 and ann_line.level == 8
    assert (bob_line.limit, bob_line.remaining, bob_line.near_limit) == (Decimal("5"), Decimal("0.5"), True)
    assert boss_line.this_month == 0 and boss_line.budget is None
    assert response.context["total"] == Decimal("5.75")
    page = response.content.decode()
    assert "Monthly budget of user bob" in page and "uncapped" in page
    assert "style=" not in page


def test_it_shows_the_models_that_cost_the_most_this_month(team):
    boss, ann, bob = team
    _used(ann, "1.5", model="openai/gpt-4o", requests=2)
    _used(bob, "0.5", model="openai/gpt-4o", source="api", requests=1)
    _used(bob, "0.25", model="openai/gpt-4o-mini", requests=9)
    _used(bob, "7", model="anthropic/claude-3-opus", days_ago=40)  # last month

    models = _client(boss).get(TEAM).context["models"]

    assert [(m.model, m.cost, m.requests, m.level) for m in models] == [
        ("openai/gpt-4o", Decimal("2.0"), 3, 20),
        ("openai/gpt-4o-mini", Decimal("0.25"), 9, 2),
    ]


def test_an_empty_month_says_so(team):
    boss, _, _ = team
    page = _client(boss).get(TEAM).content.decode()
    assert "Nobody has spent anything this month yet" in page


def test_the_csv_has_a_row_per_person_and_neutralises_formulas(team, django_user_model):
    boss, ann, _ = team
    sneaky = django_user_model.objects.create_user("=cmd@x", password="x")
    _used(ann, "2")
    _used(sneaky, "1")

    response = _client(boss).get(TEAM_CSV)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["user", "active", "spent_this_month_usd"]
    by_user = {row[0]: row for row in rows[1:]}
    assert set(by_user) == {"ann", "'=cmd@x", "boss", "bob"}
    assert by_user["ann"][2] == "2" and by_user["ann"][4] == "1"


def test_the_csv_writes_exact_plain_amounts(team):
    boss, ann, bob = team
    _used(ann, "0.0000001")
    set_budget(user=bob, amount=Decimal("0.0005"))

    rows = list(csv.reader(io.StringIO(_client(boss).get(TEAM_CSV).content.decode())))

    by_user = {row[0]: row for row in rows[1:]}
    assert by_user["ann"][2:4] == ["0.0000001", "0.0000001"]
    assert by_user["bob"][2:4] == ["0", "0"] and by_user["bob"][7:] == ["0.0005", "0.0005"]
    assert by_user["boss"][7:] == ["", ""]


def test_small_amounts_keep_the_digits_they_need(team):
    boss, ann, bob = team
    _used(ann, "0.0004")
    set_budget(user=bob, amount=Decimal("0.0005"))

    page = _client(boss).get(TEAM).content.decode()

    assert "Monthly budget of user bob, $0.0005" in page
    assert "$0.0004" in page and "$0.00<" not in page
    response = _client(boss).post(BUDGET, {"user": "ann", "amount": "0.0005", "period": "day"}, follow=True)
    assert "Set the daily budget of user ann: $0.0005." in response.content.decode()


def test_on_the_first_of_the_month_only_the_new_month_counts(team):
    boss, ann, bob = team
    with freeze_time("2026-03-31 23:30"):
        _used(ann, "3", model="openai/gpt-4o")
    with freeze_time("2026-04-01 00:30"):
        _used(bob, "0.5", model="openai/gpt-4o-mini")
        client = _client(boss)
        context = client.get(TEAM).context
        filename = client.get(TEAM_CSV)["Content-Disposition"]

    lines = {line.username: line for line in context["lines"]}
    assert (lines["ann"].this_month, lines["bob"].this_month, lines["bob"].today) == (0, Decimal("0.5"), Decimal("0.5"))
    assert context["total"] == Decimal("0.5")
    assert [model.model for model in context["models"]] == ["openai/gpt-4o-mini"]
    assert 'filename="orweb-spend-2026-04.csv"' in filename


def test_staff_see_a_team_link_and_others_do_not(team):
    boss, ann, _ = team
    usage = reverse("account:usage")
    assert TEAM in _client(boss).get(usage).content.decode()
    assert TEAM not in _client(ann).get(usage).content.decode()


def test_staff_set_change_and_remove_a_persons_budget(team):
    boss, ann, _ = team
    client = _client(boss)

    response = client.post(BUDGET, {"user": "ann", "amount": "12.5", "period": "week"}, follow=True)
    assert response.redirect_chain == [(TEAM, 302)]
    assert "Set the weekly budget of user ann: $12.50." in response.content.decode()
    assert (ann.budget.limit_usd, ann.budget.period) == (Decimal("12.5"), "week")

    client.post(BUDGET, {"user": "ann", "amount": "3", "period": "month"})
    ann.refresh_from_db()
    assert (ann.budget.limit_usd, ann.budget.period) == (Decimal("3"), "month")

    client.post(BUDGET, {"user": "ann", "amount": "", "period": "month"})
    assert not Budget.objects.filter(user=ann).exists()
    response = client.post(BUDGET, {"user": "ann", "amount": "", "period": "month"}, follow=True)
    assert "ann has no budget of their own." in response.content.decode()

    history = LogEntry.objects.filter(user=boss).order_by("action_time", "id")
    assert [(e.action_flag, e.object_repr, e.change_message) for e in history] == [
        (ADDITION, "weekly budget of user ann", "Set to $12.50 a week on the team page"),
        (CHANGE, "monthly budget of user ann", "Set to $3.00 a month on the team page"),
        (DELETION, "monthly budget of user ann", "Removed on the team page"),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"user": "ann", "amount": "-1"}, "greater than or equal to 0"),
        ({"user": "ann", "amount": "lots"}, "Enter a number"),
        ({"user": "ann", "amount": "1e400"}, "Ensure that there are no more than"),
        ({"user": "nobody", "amount": "5"}, "No active person has that name"),
        ({"user": "ann", "amount": "5", "period": "year"}, "Select a valid choice"),
    ],
)
def test_a_bad_budget_is_refused_with_a_reason_and_changes_nothing(team, fields, message):
    boss, ann, _ = team
    response = _client(boss).post(BUDGET, {"period": "month", **fields})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Budget.objects.exists()


def test_only_staff_set_budgets_and_only_by_post_with_a_csrf_token(team):
    boss, ann, _ = team
    assert _client(ann).post(BUDGET, {"user": "ann", "amount": "999"}).status_code == 403
    assert _client(boss).get(BUDGET).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(boss)
    assert strict.post(BUDGET, {"user": "ann", "amount": "1", "period": "month"}).status_code == 403
    assert not Budget.objects.exists()

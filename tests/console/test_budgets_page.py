"""The budgets page: every budget with its period, limit, spent + held, alert percentage and projected
end-of-period spend; edited inline (POST + CSRF), refused input changes nothing; each change recorded."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from freezegun import freeze_time

from billing.budgets import set_budget
from billing.models import Budget, BudgetPeriod
from console.budgets import budget_rows, projection
from console.models import AuditEvent
from tests.billing.rollups import add_usage

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 11, 0, 0, tzinfo=dt.UTC)  # 10 of November's 30 days have passed


@pytest.fixture(autouse=True)
def _frozen():
    with freeze_time(NOW):
        yield


def test_projection_is_a_straight_line_from_the_periods_start():
    start, end = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
    assert projection(Decimal("10"), start, end, NOW) == Decimal("30.0000")
    assert projection(Decimal("10"), start, end, dt.datetime(2026, 11, 1, 0, 30, tzinfo=dt.UTC)) is None
    assert projection(Decimal("10"), start, end, dt.datetime(2026, 12, 2, tzinfo=dt.UTC)) == Decimal("10")


def test_rows_read_this_periods_totals_or_the_ledger_without_writing(owner, team_group):
    group_budget = set_budget(group=team_group, amount=Decimal("100"))
    BudgetPeriod.objects.create(
        budget=group_budget, start=dt.date(2026, 11, 1), spent=Decimal("12"), held=Decimal("0.5")
    )
    own = set_budget(user=owner, amount=Decimal("20"), period="week", alert_percent=50)
    add_usage(NOW.date(), owner, "m", cost=Decimal("3"))

    rows = {row.owner_name: row for row in budget_rows()}

    assert (rows["Team"].spent, rows["Team"].held, rows["Team"].projected) == (
        Decimal("12"),
        Decimal("0.5"),
        Decimal("36.0000"),
    )
    assert (rows["olivia"].spent, rows["olivia"].held) == (Decimal("3"), Decimal(0))
    assert rows["olivia"].period_start == dt.date(2026, 11, 9) and rows["olivia"].over_alert is False
    assert not BudgetPeriod.objects.filter(budget=own).exists()


def test_the_page_shows_every_budget(staff_client, owner, team_group):
    group_budget = set_budget(group=team_group, amount=Decimal("30"))
    BudgetPeriod.objects.create(budget=group_budget, start=dt.date(2026, 11, 1), spent=Decimal("12"))
    set_budget(user=owner, amount=Decimal("5"), period="day")

    html = staff_client.get("/console/budgets/").content.decode()

    assert "group Team" in html and "olivia" in html
    assert "$12.00" in html and "$36.00" in html  # spent, projected (over the $30 limit)
    assert 'class="num near-limit">$36.00' in html
    assert 'value="30"' in html and 'value="5"' in html


def test_a_budget_is_edited_inline_and_recorded(staff_client, owner):
    budget = set_budget(user=owner, amount=Decimal("5"))
    response = staff_client.post(
        f"/console/budgets/{budget.pk}/", {"amount": "7.5", "period": "week", "alert_percent": "60"}
    )
    assert response.status_code == 302
    budget.refresh_from_db()
    assert (budget.limit_usd, budget.period, budget.alert_percent) == (Decimal("7.5"), "week", 60)
    event = AuditEvent.objects.get()
    assert (event.action, event.target_id, event.actor_name) == ("budget.change", f"person:{owner.pk}", "stella")
    assert (event.before["limit_usd"], event.after["limit_usd"]) == ("5", "7.5")
    assert (event.before["period"], event.after["period"]) == ("month", "week")


def test_an_empty_limit_removes_the_budget(staff_client, owner):
    budget = set_budget(user=owner, amount=Decimal("5"))
    staff_client.post(f"/console/budgets/{budget.pk}/", {"amount": "", "period": "month", "alert_percent": "80"})
    assert not Budget.objects.exists()
    assert AuditEvent.objects.get().after is None


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"amount": "-1", "period": "month", "alert_percent": "80"}, "greater than or equal to 0"),
        ({"amount": "99999999", "period": "month", "alert_percent": "80"}, "less than or equal to 1000000"),
        ({"amount": "1.123456", "period": "month", "alert_percent": "80"}, "no more than 4 decimal places"),
        ({"amount": "Infinity", "period": "month", "alert_percent": "80"}, "Enter a number."),
        ({"amount": "5", "period": "fortnight", "alert_percent": "80"}, "Select a valid choice"),
        ({"amount": "5", "period": "month", "alert_percent": "-1"}, "greater than or equal to 0"),
        ({"amount": "5", "period": "month"}, "This field is required."),
    ],
)
def test_refused_edits_change_nothing(staff_client, owner, data, error):
    budget = set_budget(user=owner, amount=Decimal("5"))
    response = staff_client.post(f"/console/budgets/{budget.pk}/", data)
    assert response.status_code == 400 and error in response.content.decode()
    budget.refresh_from_db()
    assert (budget.limit_usd, budget.period, budget.alert_percent) == (Decimal("5"), "month", 80)
    assert not AuditEvent.objects.exists()


def test_a_new_budget_for_a_person_or_a_group(staff_client, owner, team_group):
    staff_client.post(
        "/console/budgets/new/", {"person": "olivia", "amount": "3", "period": "day", "alert_percent": "80"}
    )
    staff_client.post(
        "/console/budgets/new/", {"group": "Team", "amount": "50", "period": "month", "alert_percent": "75"}
    )
    assert Budget.objects.get(user=owner).limit_usd == Decimal(3)
    assert Budget.objects.get(group=team_group).alert_percent == 75
    assert AuditEvent.objects.filter(action="budget.change", before__isnull=True).count() == 2


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"person": "olivia", "group": "Team"}, "Give a person or a group, not both."),
        ({}, "Give a person or a group, not both."),
        ({"person": "nobody"}, "Nobody has that username."),
        ({"group": "Nowhere"}, "No group has that name."),
        ({"person": "olivia", "amount": ""}, "A new budget needs a limit."),
    ],
)
def test_a_refused_new_budget_creates_nothing(staff_client, owner, team_group, data, error):
    data = {"amount": "5", "period": "month", "alert_percent": "80"} | data
    response = staff_client.post("/console/budgets/new/", data)
    assert response.status_code == 400 and error in response.content.decode()
    assert not Budget.objects.exists() and not AuditEvent.objects.exists()


def test_edits_need_post_and_the_csrf_token(staff, owner):
    budget = set_budget(user=owner, amount=Decimal("5"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    data = {"amount": "9", "period": "month", "alert_percent": "80"}
    assert client.post(f"/console/budgets/{budget.pk}/", data).status_code == 403
    assert client.get(f"/console/budgets/{budget.pk}/", data).status_code == 405
    budget.refresh_from_db()
    assert budget.limit_usd == Decimal(5)


@pytest.mark.parametrize("side", ["owner", "teammate", "outsider"])
def test_members_edit_no_budget(request, side, owner):
    budget = set_budget(user=owner, amount=Decimal("5"))
    client = request.getfixturevalue(f"{side}_client")
    data = {"amount": "500", "period": "month", "alert_percent": "80"}
    assert client.post(f"/console/budgets/{budget.pk}/", data).status_code == 403
    assert client.post("/console/budgets/new/", data | {"person": side}).status_code == 403
    budget.refresh_from_db()
    assert budget.limit_usd == Decimal(5) and Budget.objects.count() == 1

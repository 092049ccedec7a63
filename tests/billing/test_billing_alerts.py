"""Budget alerts: one e-mail per period past its alert percentage, to the people it concerns and staff."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail

from billing.alerts import send_budget_alerts
from billing.budgets import current_period, set_budget, today
from billing.models import BudgetPeriod
from orweb.schedules import BEAT_SCHEDULE

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _addresses(owner, teammate, staff, django_user_model) -> None:
    """Alerts go by e-mail: the personas have addresses; a staff member without one is skipped."""
    for user in (owner, teammate, staff):
        user.email = f"{user.username}@example.com"
        user.save()
    django_user_model.objects.create_user("quiet", password="x", is_staff=True)


def _spent(budget, amount) -> BudgetPeriod:
    period = current_period(budget)
    period.spent = Decimal(amount)
    period.save()
    return period


def test_a_budget_past_its_alert_percentage_alerts_its_owner_and_staff_once(owner):
    period = _spent(set_budget(user=owner, amount=Decimal(10)), "8.5")

    assert send_budget_alerts() == 1
    assert send_budget_alerts() == 0

    [message] = mail.outbox
    assert message.to == ["olivia@example.com", "stella@example.com"]
    assert message.subject == "orweb: the monthly budget of user olivia is 85% used"
    assert "$8.50 of $10.00" in message.body and "/account/usage/" in message.body
    period.refresh_from_db()
    assert period.alerted


def test_a_tiny_budget_is_written_with_the_digits_it_needs(owner):
    _spent(set_budget(user=owner, amount=Decimal("0.0005")), "0.0004")
    assert send_budget_alerts() == 1
    assert "$0.0004 of $0.0005 (80%)" in mail.outbox[0].body


def test_below_the_percentage_nothing_is_sent(owner):
    _spent(set_budget(user=owner, amount=Decimal(10), alert_percent=90), "8.99")
    assert send_budget_alerts() == 0
    assert mail.outbox == []


def test_a_group_budget_alerts_the_groups_members(team_group):
    _spent(set_budget(group=team_group, amount=Decimal(2), period="day"), "2")

    assert send_budget_alerts() == 1
    assert mail.outbox[0].to == ["olivia@example.com", "stella@example.com", "tomas@example.com"]
    assert "daily budget of group Team is 100% used" in mail.outbox[0].subject


def test_a_past_period_does_not_alert(owner):
    budget = set_budget(user=owner, amount=Decimal(1))
    BudgetPeriod.objects.create(budget=budget, start=today().replace(day=1) - dt.timedelta(days=31), spent=5)
    assert send_budget_alerts() == 0


def test_a_failed_send_is_tried_again_next_run(owner, settings):
    period = _spent(set_budget(user=owner, amount=Decimal(1)), "1")
    settings.EMAIL_BACKEND = "tests.billing.test_billing_alerts.BrokenBackend"

    assert send_budget_alerts() == 0
    period.refresh_from_db()
    assert not period.alerted

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert send_budget_alerts() == 1


def test_beat_runs_every_scheduled_task_that_exists_and_this_one_every_minute():
    from orweb.celery import app

    app.loader.import_default_modules()
    assert {entry["task"] for entry in BEAT_SCHEDULE.values()} <= set(app.tasks)
    entry = BEAT_SCHEDULE["billing-budget-alerts"]
    assert entry["task"] == "billing.tasks.budget_alerts" and entry["schedule"] == 60.0


class BrokenBackend:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("no mail server")

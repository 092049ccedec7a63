"""Budget alerts: one e-mail per budget period that has used its alert percentage (80% by default).

Run every minute by Celery beat, off the metered path. A period is claimed with a conditional UPDATE
(`alerted` false -> true) before anything is sent, so two workers never both send; if sending fails the
claim is undone and the next run tries again. Only current periods alert: a budget raised or a period
past are left alone.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import F
from django.urls import reverse

from billing.budgets import period_end, period_start, today
from billing.models import Budget, BudgetPeriod
from orweb.money import format_usd

log = logging.getLogger(__name__)


def staff_addresses() -> list[str]:
    """Every active staff member's address, each once (those without one are skipped): staff hear of
    every budget alert and of books that don't balance (billing.books)."""
    staff = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    return sorted(set(staff.values_list("email", flat=True)))


def recipients(budget: Budget) -> list[str]:
    """Who hears of it: the person whose budget it is (or the group's members), and every active staff
    member; only addresses that are set, each once. A cap a person set on themselves is theirs alone: only
    they hear of it."""
    users = get_user_model().objects.filter(is_active=True)
    if budget.group_id:
        concerned = users.filter(groups=budget.group_id)
    else:
        concerned = users.filter(pk=budget.user_id or budget.person_id)
    addresses = [address for address in concerned.values_list("email", flat=True) if address]
    return sorted({*addresses, *([] if budget.is_own_cap else staff_addresses())})


def _message(budget: Budget, period: BudgetPeriod) -> tuple[str, str]:
    used = period.spent * 100 / budget.limit_usd
    subject = f"orweb: the {budget.label} is {used:.0f}% used"
    end = period_end(budget.period, period.start)
    body = (
        f"The {budget.label} has used {format_usd(period.spent)} of {format_usd(budget.limit_usd)} ({used:.0f}%)"
        f" in the period {period.start:%b} {period.start.day} to {end:%b} {end.day} (exclusive).\n"
        f"Calls it cannot cover are refused until the period ends or the budget is raised.\n\n"
        f"Spend: {settings.ORWEB_SITE_URL}{reverse('account:usage')}\n"
        f"Team spend (staff): {settings.ORWEB_SITE_URL}{reverse('account:team')}\n"
    )
    return subject, body


def send_budget_alerts() -> int:
    """Alert every current budget period past its alert percentage that hasn't been alerted; returns how
    many were sent."""
    day = today()
    due = (
        BudgetPeriod.objects.filter(alerted=False, budget__limit_usd__gt=0)
        .filter(spent__gte=F("budget__limit_usd") * F("budget__alert_percent") / 100)
        .select_related("budget__user", "budget__group", "budget__person")
    )
    sent = 0
    for period in due:
        budget = period.budget
        if period.start != period_start(budget.period, day):
            continue
        if not BudgetPeriod.objects.filter(pk=period.pk, alerted=False).update(alerted=True):
            continue  # another worker has it
        to = recipients(budget)
        try:
            if to:
                send_mail(*_message(budget, period), None, to)
        except Exception:
            BudgetPeriod.objects.filter(pk=period.pk).update(alerted=False)
            log.exception("could not send the alert for the %s; trying again next run", budget.label)
            continue
        log.info("alerted %s people: the %s", len(to), budget.label)
        sent += 1
    return sent

"""Budget thresholds in the app: when a budget's current period has used its alert percentage, and again
when it has used all of it, each person it concerns (the person, or the group's members) gets a banner on
their pages until they dismiss it, and the team's webhook is told (billing.alerts_webhook).

Once per threshold per period: the `BudgetAlert` row is unique on (period, threshold) and written with
ON CONFLICT DO NOTHING, so two workers, or a run repeated every minute, raise it once. Run by Celery beat
beside the e-mail alerts (billing.alerts), off the metered path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.http import Http404
from django.utils import timezone

from billing.budgets import period_end, period_start, today
from billing.models import ADJECTIVE, AlertBanner, Budget, BudgetAlert, BudgetPeriod, Period

WEBHOOK_TASK = "billing.tasks.deliver_alert_webhook"  # by name: the task module imports this one
FULL = 100


def thresholds(alert_percent: int) -> list[int]:
    """The percentages of the limit that alert: the budget's own, then the whole limit."""
    return sorted({alert_percent, FULL} - {0})


def _current_periods(day: dt.date) -> Q:
    return (
        Q(budget__period=Period.DAY, start=period_start(Period.DAY, day))
        | Q(budget__period=Period.WEEK, start=period_start(Period.WEEK, day))
        | Q(budget__period=Period.MONTH, start=period_start(Period.MONTH, day))
    )


def _concerned(period: BudgetPeriod) -> list[int]:
    budget = period.budget
    people = get_user_model().objects.filter(is_active=True)
    if budget.group_id:
        people = people.filter(groups=budget.group_id)
    else:
        people = people.filter(pk=budget.user_id or budget.person_id)
    return list(people.values_list("pk", flat=True))


def raise_threshold_alerts() -> int:
    """Raise every threshold a current budget period has reached and not yet raised; how many were."""
    periods = list(
        BudgetPeriod.objects.filter(_current_periods(today()), budget__limit_usd__gt=0)
        .filter(spent__gte=F("budget__limit_usd") * F("budget__alert_percent") / 100)
        .select_related("budget")
    )
    raised = set(BudgetAlert.objects.filter(period__in=periods).values_list("period_id", "threshold"))
    count = 0
    for period in periods:
        budget = period.budget
        for threshold in thresholds(budget.alert_percent):
            if (period.pk, threshold) not in raised and period.spent * 100 >= budget.limit_usd * threshold:
                count += _raise(period, threshold)
    return count


def _raise(period: BudgetPeriod, threshold: int) -> bool:
    """Write the alert and its banners, and enqueue its webhook after commit; False if another run did."""
    with transaction.atomic():
        alert, created = BudgetAlert.objects.get_or_create(
            period=period,
            threshold=threshold,
            defaults={"spent": period.spent, "limit_usd": period.budget.limit_usd},
        )
        if not created:
            return False
        AlertBanner.objects.bulk_create([AlertBanner(alert=alert, user_id=user_id) for user_id in _concerned(period)])
        if settings.ORWEB_ALERT_WEBHOOK_URL:
            transaction.on_commit(current_app.signature(WEBHOOK_TASK, args=[alert.pk]).delay)
    return True


@dataclass(frozen=True)
class Banner:
    """What a person's page shows of one alert."""

    id: int
    label: str
    threshold: int
    spent: Decimal
    limit: Decimal
    period_end: dt.date

    @property
    def exhausted(self) -> bool:
        return self.threshold >= FULL


def open_banners(user: Any) -> list[Banner]:
    """The person's alerts not yet dismissed, of current periods only, newest first."""
    if not getattr(user, "is_authenticated", False):
        return []
    rows = (
        AlertBanner.objects.filter(user=user, dismissed_at__isnull=True)
        .select_related("alert__period__budget__user", "alert__period__budget__group", "alert__period__budget__person")
        .order_by("-alert__created", "-pk")
    )
    day = today()
    banners = []
    for row in rows:
        alert = row.alert
        budget = alert.period.budget
        end = period_end(budget.period, alert.period.start)
        if end <= day:
            continue
        banners.append(Banner(row.pk, _as_theirs(budget, user.pk), alert.threshold, alert.spent, alert.limit_usd, end))
    return banners


def _as_theirs(budget: Budget, user_id: int) -> str:
    """The budget named as its person reads it on their own pages ("your monthly budget")."""
    adjective = ADJECTIVE[budget.period]
    if budget.person_id == user_id:
        return f"your own {adjective} cap"
    if budget.user_id == user_id:
        return f"your {adjective} budget"
    return f"the {adjective} budget of your group {budget.group}"


def dismiss(user: Any, banner_id: int) -> None:
    """Hide one of the person's banners for good; someone else's (or an unknown one) is a 404."""
    if not AlertBanner.objects.filter(pk=banner_id, user=user).update(dismissed_at=timezone.now()):
        raise Http404("No such alert.")

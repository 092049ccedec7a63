"""Budgets: which apply to a user, their current period, and what is left.

Periods are calendar periods in UTC: a month starts on the 1st, a week on Monday, a day at midnight.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from billing.models import Budget, BudgetPeriod, DailyPersonUsage, Period


@dataclass(frozen=True)
class BudgetStatus:
    """One budget as it stands this period (for pages, /v1/key and auto's "remaining budget")."""

    budget_id: int
    label: str
    limit: Decimal
    spent: Decimal
    held: Decimal
    remaining: Decimal
    period: str
    period_start: dt.date
    period_end: dt.date
    alert: bool
    own: bool = False  # the person's own cap (billing.caps), which they change on their usage page


def period_start(period: str, day: dt.date) -> dt.date:
    if period == Period.DAY:
        return day
    if period == Period.WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(period: str, start: dt.date) -> dt.date:
    """The first day after the period (exclusive end)."""
    if period == Period.DAY:
        return start + dt.timedelta(days=1)
    if period == Period.WEEK:
        return start + dt.timedelta(days=7)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def applicable_budgets(user: Any) -> list[Budget]:
    """The user's own budget, the budgets of each of their groups and the cap they set themselves, ordered
    by id (the order holds lock their periods in)."""
    owners = Q(user=user) | Q(group__user=user) | Q(person=user)
    return list(Budget.objects.filter(owners).distinct().order_by("pk"))


def current_period(budget: Budget, day: dt.date | None = None) -> BudgetPeriod:
    """This period's running totals of a budget, created on first use (race-safe on the unique key).

    A new period starts from what its owner already spent since the period began (the ledger's word), so a
    budget set mid-month, or removed and set again, counts the month's spending so far."""
    start = period_start(budget.period, day or today())
    period = BudgetPeriod.objects.filter(budget=budget, start=start).first()
    if period is not None:
        return period
    try:
        with transaction.atomic():
            return BudgetPeriod.objects.create(budget=budget, start=start, spent=spent_since(budget, start))
    except IntegrityError:
        return BudgetPeriod.objects.get(budget=budget, start=start)


def spent_since(budget: Budget, start: dt.date) -> Decimal:
    """What the budget's owner (the user, or the group's members) has spent from `start` (UTC) on: from the
    rollup per day and person, which settling writes with each ledger row, so a group's month costs a few
    hundred rows to sum, not its members' every call."""
    if budget.group_id:
        owners = list(budget.group.user_set.values_list("pk", flat=True))
    else:
        owners = [budget.user_id or budget.person_id]
    rows = DailyPersonUsage.objects.filter(user_id__in=owners, day__gte=start)
    return rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)


def _status(budget: Budget, period: BudgetPeriod) -> BudgetStatus:
    limit = budget.limit_usd
    used = period.spent + period.held
    return BudgetStatus(
        budget_id=budget.pk,
        label=budget.label,
        limit=limit,
        spent=period.spent,
        held=period.held,
        remaining=max(limit - used, Decimal(0)),
        period=budget.period,
        period_start=period.start,
        period_end=period_end(budget.period, period.start),
        alert=limit > 0 and period.spent * 100 >= limit * budget.alert_percent,
        own=budget.is_own_cap,
    )


def status_for(user: Any) -> list[BudgetStatus]:
    """Every budget that applies to the user now, tightest (least remaining) first."""
    statuses = [_status(budget, current_period(budget)) for budget in applicable_budgets(user)]
    return sorted(statuses, key=lambda s: (s.remaining, s.budget_id))


def remaining_for(user: Any) -> Decimal | None:
    """The least any applicable budget has left, or None when no budget applies."""
    statuses = status_for(user)
    return statuses[0].remaining if statuses else None


def set_budget(
    *,
    user: Any = None,
    group: Any = None,
    amount: Decimal,
    period: str = Period.MONTH,
    alert_percent: int | None = None,
) -> Budget:
    """Create or change the budget of one user or one group."""
    if (user is None) == (group is None):
        raise ValueError("Give exactly one of user or group.")
    amount = Decimal(amount)
    if not amount.is_finite() or amount < 0:
        raise ValueError("The amount must be a non-negative number of USD.")
    if period not in Period.values:
        raise ValueError(f"The period must be one of {', '.join(Period.values)}.")
    if alert_percent is not None and not 0 <= alert_percent <= 100:
        raise ValueError("The alert percentage must be between 0 and 100.")
    defaults: dict[str, Any] = {"limit_usd": amount, "period": period}
    if alert_percent is not None:
        defaults["alert_percent"] = alert_percent
    owner = {"user": user} if user is not None else {"group": group}
    budget, _ = Budget.objects.update_or_create(**owner, defaults=defaults)
    return budget

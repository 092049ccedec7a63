"""What a user has spent and may still spend: OpenRouter's `/key` shape for /v1/key, and the usage page.

All sums come from billing (budget periods and the daily rollup), never from the ledger row by row, so
the page and /v1/key stay cheap however much a user has used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from billing.budgets import BudgetStatus, period_start, status_for, today
from billing.models import DailyUsage
from gateway.openai_compat import usd

CHART_DAYS = 30
RESETS = {"day": "daily", "week": "weekly", "month": "monthly"}


@dataclass(frozen=True)
class DaySpend:
    day: dt.date
    cost: Decimal
    requests: int
    level: int  # bar height in 5% steps of the busiest day (0–20): a CSS class, as CSP forbids style=


@dataclass(frozen=True)
class UsageSummary:
    budgets: list[BudgetStatus]
    period_spend: Decimal
    today: Decimal
    this_month: Decimal
    days: list[DaySpend]


def _spend_since(user: Any, first_day: dt.date) -> Decimal:
    total = DailyUsage.objects.filter(user=user, day__gte=first_day).aggregate(total=Sum("cost"))["total"]
    return total or Decimal(0)


def period_spend(user: Any, budgets: list[BudgetStatus]) -> Decimal:
    """What the user spent this period: the period of their tightest budget, else this calendar month."""
    period = budgets[0].period if budgets else "month"
    return _spend_since(user, period_start(period, today()))


def daily_spend(user: Any, days: int = CHART_DAYS) -> list[DaySpend]:
    """The last `days` days, oldest first, every day present (zero when nothing was spent)."""
    last = today()
    first = last - dt.timedelta(days=days - 1)
    rows = (DailyUsage.objects.filter(user=user, day__gte=first).values("day")
            .annotate(cost=Sum("cost"), requests=Sum("requests")))
    by_day = {row["day"]: row for row in rows}
    peak = max((row["cost"] for row in rows), default=Decimal(0))
    result = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        row = by_day.get(day, {"cost": Decimal(0), "requests": 0})
        level = int(row["cost"] * 20 / peak) if peak > 0 else 0
        result.append(DaySpend(day=day, cost=row["cost"], requests=row["requests"], level=level))
    return result


def usage_summary(user: Any) -> UsageSummary:
    now = today()
    budgets = status_for(user)
    return UsageSummary(
        budgets=budgets,
        period_spend=period_spend(user, budgets),
        today=_spend_since(user, now),
        this_month=_spend_since(user, now.replace(day=1)),
        days=daily_spend(user),
    )


def key_info(user: Any, label: str) -> dict[str, Any]:
    """OpenRouter's `GET /key` answer for this user: `limit` and `limit_remaining` are those of the
    tightest budget that applies (None when none does); `usage` is what the user spent this period."""
    budgets = status_for(user)
    tightest = budgets[0] if budgets else None
    now = today()
    usage_monthly = _spend_since(user, now.replace(day=1))
    return {
        "data": {
            "label": label,
            "limit": usd(tightest.limit) if tightest else None,
            "limit_remaining": usd(tightest.remaining) if tightest else None,
            "limit_reset": RESETS[tightest.period] if tightest else None,
            "usage": usd(period_spend(user, budgets)),
            "usage_daily": usd(_spend_since(user, now)),
            "usage_weekly": usd(_spend_since(user, now - dt.timedelta(days=now.weekday()))),
            "usage_monthly": usd(usage_monthly),
            "is_free_tier": False,
        }
    }

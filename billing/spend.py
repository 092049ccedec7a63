"""What users spent, read from the ledger and the daily rollup (for /v1/key, spend pages, charts)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from billing.budgets import period_start, today
from billing.models import DailyUsage, Period


def user_period_spend(user: Any, period: str = Period.MONTH, *, day: dt.date | None = None) -> Decimal:
    """USD the user spent in the current period (a calendar month by default, UTC)."""
    start = period_start(period, day or today())
    total = DailyUsage.objects.filter(user=user, day__gte=start).aggregate(total=Sum("cost"))["total"]
    return total or Decimal(0)


def daily_spend(user: Any = None, days: int = 30) -> list[dict[str, Any]]:
    """One row per day of the last `days` days that had calls: day, requests, errors, tokens, cost."""
    since = today() - dt.timedelta(days=days - 1)
    rows = DailyUsage.objects.filter(day__gte=since)
    if user is not None:
        rows = rows.filter(user=user)
    return list(
        rows.values("day")
        .annotate(
            requests=Sum("requests"),
            errors=Sum("errors"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost=Sum("cost"),
        )
        .order_by("day")
    )


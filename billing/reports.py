"""What people have spent and may still spend: the usage page, OpenRouter's `/key` shape for /v1/key,
and for staff the whole team's spend this month (page and CSV).

All sums come from the budget periods and the rollups (a person's from the daily rollup by its `(user, day)`
index, the team's from the rollups per day and person and per day, model and source), never from the ledger
row by row, so the pages and /v1/key stay cheap however much the team has used. Months, weeks and days
are UTC, as budgets'.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce

from billing.budgets import BudgetStatus, period_start, status_for, today
from billing.models import DailyModelUsage, DailyPersonUsage, DailyUsage, Period
from billing.spend import spend_summaries
from orweb.money import json_usd, plain_usd

CHART_DAYS = 30
RESETS = {Period.DAY: "daily", Period.WEEK: "weekly", Period.MONTH: "monthly"}


def _level(cost: Decimal, peak: Decimal) -> int:
    """A bar's length in 5% steps of the biggest (0–20): a CSS class, as the CSP forbids style=."""
    return int(cost * 20 / peak) if peak > 0 else 0


def _spend_since(user: Any, first_day: dt.date) -> Decimal:
    total = DailyUsage.objects.filter(user=user, day__gte=first_day).aggregate(total=Sum("cost"))["total"]
    return total or Decimal(0)


def period_spend(user: Any, budgets: list[BudgetStatus]) -> Decimal:
    """What the user spent this period: the period of their tightest budget, else this calendar month."""
    period = budgets[0].period if budgets else Period.MONTH
    return _spend_since(user, period_start(period, today()))


@dataclass(frozen=True)
class DaySpend:
    day: dt.date
    cost: Decimal
    requests: int
    level: int


def daily_spend(user: Any, days: int = CHART_DAYS) -> list[DaySpend]:
    """The last `days` days, oldest first, every day present (zero when nothing was spent)."""
    last = today()
    first = last - dt.timedelta(days=days - 1)
    rows = (
        DailyUsage.objects.filter(user=user, day__gte=first)
        .values("day")
        .annotate(cost=Sum("cost"), requests=Sum("requests"))
    )
    by_day = {row["day"]: row for row in rows}
    peak = max((row["cost"] for row in rows), default=Decimal(0))
    result = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        row = by_day.get(day, {"cost": Decimal(0), "requests": 0})
        result.append(DaySpend(day=day, cost=row["cost"], requests=row["requests"], level=_level(row["cost"], peak)))
    return result


@dataclass(frozen=True)
class UsageSummary:
    budgets: list[BudgetStatus]
    period_spend: Decimal
    today: Decimal
    this_month: Decimal
    days: list[DaySpend]


def usage_summary(user: Any) -> UsageSummary:
    """Everything the usage page shows of one user."""
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
    tightest budget that applies (None when none does); `usage` is what the user spent this period.
    Amounts are JSON numbers, as OpenRouter's: at most 10 decimal places and 15 significant digits, so
    `float` prints exactly the Decimal's digits."""
    budgets = status_for(user)
    tightest = budgets[0] if budgets else None
    now = today()
    return {
        "data": {
            "label": label,
            "limit": json_usd(tightest.limit) if tightest else None,
            "limit_remaining": json_usd(tightest.remaining) if tightest else None,
            "limit_reset": RESETS[tightest.period] if tightest else None,
            "usage": json_usd(period_spend(user, budgets)),
            "usage_daily": json_usd(_spend_since(user, now)),
            "usage_weekly": json_usd(_spend_since(user, period_start(Period.WEEK, now))),
            "usage_monthly": json_usd(_spend_since(user, period_start(Period.MONTH, now))),
            "is_free_tier": False,
        }
    }


@dataclass(frozen=True)
class MemberSpend:
    """One person's line on the team page."""

    username: str
    is_active: bool
    this_month: Decimal
    today: Decimal
    requests: int
    errors: int
    budget: str | None
    limit: Decimal | None
    remaining: Decimal | None
    level: int

    @property
    def near_limit(self) -> bool:
        return self.limit is not None and self.remaining is not None and self.remaining <= self.limit / 5


@dataclass
class _Month:
    cost: Decimal = Decimal(0)
    today: Decimal = Decimal(0)
    requests: int = 0
    errors: int = 0


def team_spend() -> list[MemberSpend]:
    """Every user with what they spent this calendar month (UTC) and today, their calls and failures this
    month and the tightest budget that applies; biggest spenders first. Sums come from the rollup per day
    and person (one query); budgets from one statement for everyone."""
    now = today()
    rows = (
        DailyPersonUsage.objects.filter(day__gte=now.replace(day=1))
        .values("user_id")
        .annotate(
            spent=Sum("cost"),
            spent_today=Coalesce(Sum("cost", filter=Q(day=now)), Decimal(0)),
            calls=Sum("requests"),
            failed=Sum("errors"),
        )
    )
    month = {
        row["user_id"]: _Month(cost=row["spent"], today=row["spent_today"], requests=row["calls"], errors=row["failed"])
        for row in rows
    }
    peak = max((totals.cost for totals in month.values()), default=Decimal(0))
    people = list(get_user_model().objects.order_by("username"))
    summaries = spend_summaries([user.pk for user in people])
    lines = []
    for user in people:
        totals = month.get(user.pk, _Month())
        summary = summaries[user.pk]
        lines.append(
            MemberSpend(
                username=user.get_username(),
                is_active=user.is_active,
                this_month=totals.cost,
                today=totals.today,
                requests=totals.requests,
                errors=totals.errors,
                budget=summary.budget,
                limit=summary.limit,
                remaining=summary.remaining,
                level=_level(totals.cost, peak),
            )
        )
    return sorted(lines, key=lambda line: (-line.this_month, line.username))


@dataclass(frozen=True)
class ModelSpend:
    model: str
    cost: Decimal
    requests: int
    level: int


def model_spend(limit: int = 10) -> list[ModelSpend]:
    """The models that cost the most this calendar month, everyone's calls together (one query of the
    team's rollup per day, model and source)."""
    rows = list(
        DailyModelUsage.objects.filter(day__gte=today().replace(day=1))
        .values("model")
        .annotate(cost=Sum("cost"), requests=Sum("requests"))
        .order_by("-cost", "model")[:limit]
    )
    peak = rows[0]["cost"] if rows else Decimal(0)
    return [ModelSpend(row["model"], row["cost"], row["requests"], _level(row["cost"], peak)) for row in rows]


CSV_HEADER = [
    "user",
    "active",
    "spent_this_month_usd",
    "spent_today_usd",
    "requests",
    "errors",
    "budget",
    "budget_limit_usd",
    "budget_remaining_usd",
]


def _cell(value: str | None) -> str:
    """A CSV cell a spreadsheet shows as text: leading = + - @ would make it a formula."""
    text = value or ""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def team_csv_rows(lines: list[MemberSpend]) -> list[list[str]]:
    """The team page as CSV rows, amounts exact and plain ("0.0000001", never "1E-7" or a rounded float)."""
    return [CSV_HEADER] + [
        [
            _cell(line.username),
            "yes" if line.is_active else "no",
            plain_usd(line.this_month),
            plain_usd(line.today),
            str(line.requests),
            str(line.errors),
            _cell(line.budget),
            plain_usd(line.limit) or "",
            plain_usd(line.remaining) or "",
        ]
        for line in lines
    ]

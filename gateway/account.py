"""What a user has spent and may still spend: OpenRouter's `/key` shape for /v1/key, the usage page, and
for staff the whole team's spend this month.

All sums come from billing (budget periods and the daily rollup), never from the ledger row by row, so
the page and /v1/key stay cheap however much a user has used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.db.models import Sum

from billing.budgets import BudgetStatus, period_start, set_budget, status_for, today
from billing.models import Budget, DailyUsage
from billing.spend import spend_summaries
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
    level: int  # bar length in 5% steps of the biggest spender (0–20), a CSS class as on the usage page

    @property
    def near_limit(self) -> bool:
        return self.limit is not None and self.remaining is not None and self.remaining <= self.limit / 5


def team_spend() -> list[MemberSpend]:
    """Every user with what they spent this calendar month (UTC) and today, their calls and failures this
    month and the tightest budget that applies; biggest spenders first. Sums come from the daily rollup
    (one query); budgets from one statement for everyone."""
    now = today()
    rows = (
        DailyUsage.objects.filter(day__gte=now.replace(day=1))
        .values("user_id", "day")
        .annotate(cost=Sum("cost"), requests=Sum("requests"), errors=Sum("errors"))
    )
    month: dict[int, list] = {}
    for row in rows:
        totals = month.setdefault(row["user_id"], [Decimal(0), Decimal(0), 0, 0])
        totals[0] += row["cost"]
        totals[1] += row["cost"] if row["day"] == now else 0
        totals[2] += row["requests"]
        totals[3] += row["errors"]
    peak = max((totals[0] for totals in month.values()), default=Decimal(0))
    people = list(get_user_model().objects.order_by("username"))
    summaries = spend_summaries([user.pk for user in people])
    lines = []
    for user in people:
        cost, today_cost, requests, errors = month.get(user.pk, [Decimal(0), Decimal(0), 0, 0])
        summary = summaries[user.pk]
        lines.append(
            MemberSpend(
                username=user.get_username(),
                is_active=user.is_active,
                this_month=cost,
                today=today_cost,
                requests=requests,
                errors=errors,
                budget=summary.budget,
                limit=summary.limit,
                remaining=summary.remaining,
                level=int(cost * 20 / peak) if peak > 0 else 0,
            )
        )
    return sorted(lines, key=lambda line: (-line.this_month, line.username))


@dataclass(frozen=True)
class ModelSpend:
    model: str
    cost: Decimal
    requests: int
    level: int  # as MemberSpend.level, of the most expensive model


def model_spend(limit: int = 10) -> list[ModelSpend]:
    """The models that cost the most this calendar month, everyone's calls together (one query)."""
    rows = list(
        DailyUsage.objects.filter(day__gte=today().replace(day=1))
        .values("model")
        .annotate(cost=Sum("cost"), requests=Sum("requests"))
        .order_by("-cost", "model")[:limit]
    )
    peak = rows[0]["cost"] if rows else Decimal(0)
    return [
        ModelSpend(row["model"], row["cost"], row["requests"], int(row["cost"] * 20 / peak) if peak > 0 else 0)
        for row in rows
    ]


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


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: leading = + - @ would make it a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def team_csv_rows(lines: list[MemberSpend]) -> list[list[str]]:
    return [CSV_HEADER] + [
        [
            _cell(line.username),
            "yes" if line.is_active else "no",
            str(line.this_month),
            str(line.today),
            str(line.requests),
            str(line.errors),
            _cell(line.budget),
            "" if line.limit is None else str(line.limit),
            "" if line.remaining is None else str(line.remaining),
        ]
        for line in lines
    ]


def apply_person_budget(staff: Any, person: Any, amount: Decimal | None, period: str) -> str:
    """Set or change `person`'s own budget, or with no amount remove it, and record who did it in the
    admin's history (Django's LogEntry); returns what happened, for the page."""
    existing = list(Budget.objects.filter(user=person))
    if amount is None:
        if not existing:
            return f"{person} has no budget of their own."
        LogEntry.objects.log_actions(staff.pk, existing, DELETION, "Removed on the team page", single_object=True)
        Budget.objects.filter(user=person).delete()
        return f"Removed {person}'s own budget."
    budget = set_budget(user=person, amount=amount, period=period)
    note = f"Set to ${budget.limit_usd:.2f} a {period} on the team page"
    LogEntry.objects.log_actions(staff.pk, [budget], CHANGE if existing else ADDITION, note, single_object=True)
    return f"Set the {budget.label}: ${budget.limit_usd:.2f}."

"""Every budget as it stands this period, with where it is heading: the budgets page's numbers.

Read-only: a budget whose period has no row yet shows what its owner spent since the period began (as
billing.budgets would start the period, from the rollup per day and person), without creating the row on
a GET.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.budgets import period_end, period_start
from billing.models import Budget, BudgetPeriod, DailyPersonUsage

# Before this much of a period has passed, a projection would multiply noise (a dollar in the first minute
# of a month is not $43,000 by its end): show none.
MIN_ELAPSED = dt.timedelta(hours=1)


@dataclass(frozen=True)
class BudgetRow:
    budget: Budget
    owner_kind: str
    owner_name: str
    limit: Decimal
    spent: Decimal
    held: Decimal
    period_start: dt.date
    period_end: dt.date
    projected: Decimal | None

    @property
    def used(self) -> Decimal:
        return self.spent + self.held

    @property
    def over_alert(self) -> bool:
        return self.limit > 0 and self.used * 100 >= self.limit * self.budget.alert_percent

    @property
    def projected_over(self) -> bool:
        return self.projected is not None and self.projected > self.limit


def projection(spent: Decimal, start: dt.date, end: dt.date, now: dt.datetime) -> Decimal | None:
    """Spend at the period's end if it goes on at the rate so far (straight line from the start)."""
    begin = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    finish = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    elapsed = now - begin
    if elapsed < MIN_ELAPSED:
        return None
    if now >= finish:
        return spent
    ratio = Decimal((finish - begin).total_seconds()) / Decimal(elapsed.total_seconds())
    return (spent * ratio).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _spent_since(budgets: list[tuple[Budget, dt.date]]) -> dict[int, Decimal]:
    """`billing.budgets.spent_since` of many budgets in two queries (members, then the rollup per day and
    person since the earliest start), not two per budget."""
    if not budgets:
        return {}
    groups = [budget.group_id for budget, _ in budgets if budget.group_id]
    members: dict[int, set[int]] = defaultdict(set)
    for user_id, group_id in (
        get_user_model().groups.through.objects.filter(group_id__in=groups).values_list("user_id", "group_id")
    ):
        members[group_id].add(user_id)
    owners = {
        budget.pk: members[budget.group_id] if budget.group_id else {budget.user_id or budget.person_id}
        for budget, _ in budgets
    }
    daily: dict[int, list[tuple[dt.date, Decimal]]] = defaultdict(list)
    rows = DailyPersonUsage.objects.filter(
        user_id__in=set().union(*owners.values()), day__gte=min(start for _, start in budgets)
    ).values_list("user_id", "day", "cost")
    for user_id, day, cost in rows:
        daily[user_id].append((day, cost))
    return {
        budget.pk: sum(
            (cost for user_id in owners[budget.pk] for day, cost in daily[user_id] if day >= start), Decimal(0)
        )
        for budget, start in budgets
    }


def budget_rows(now: dt.datetime | None = None) -> list[BudgetRow]:
    """Every budget of people and groups, and the caps people set on themselves (kind "own", which only
    they change), groups first, then by owner name."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    budgets = list(Budget.objects.select_related("user", "group", "person"))
    starts = {budget.pk: period_start(budget.period, today) for budget in budgets}
    periods = {
        (period.budget_id, period.start): period
        for period in BudgetPeriod.objects.filter(budget__in=budgets, start__in=set(starts.values()))
    }
    unstarted = [budget for budget in budgets if (budget.pk, starts[budget.pk]) not in periods]
    rows = []
    spent_before = _spent_since([(budget, starts[budget.pk]) for budget in unstarted])
    for budget in budgets:
        start = starts[budget.pk]
        end = period_end(budget.period, start)
        period = periods.get((budget.pk, start))
        spent = period.spent if period else spent_before[budget.pk]
        held = period.held if period else Decimal(0)
        rows.append(
            BudgetRow(
                budget=budget,
                owner_kind="group" if budget.group_id else "own" if budget.person_id else "person",
                owner_name=budget.group.name if budget.group_id else (budget.user or budget.person).get_username(),
                limit=budget.limit_usd,
                spent=spent,
                held=held,
                period_start=start,
                period_end=end,
                projected=projection(spent, start, end, now),
            )
        )
    return sorted(rows, key=lambda row: (row.owner_kind != "group", row.owner_name.lower()))

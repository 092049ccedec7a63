"""The "spent / left" line of each person: this month's spend and the tightest budget that applies (a
person's own cap included), for many people in one statement (the header on every page, the chat after
every reply, the team page)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model

from billing.budgets import period_start, today
from billing.models import Period, budget_label
from orweb import sql


@dataclass
class SpendSummary:
    """The header's "spent / left" line: this month's spend and the tightest budget that applies."""

    spent: Decimal
    remaining: Decimal | None
    budget: str | None
    limit: Decimal | None = None


@cache
def _spend_statement() -> str:
    """For each user asked about: this month's spend (from the rollup per day and person, which settling
    writes with the ledger row) and every budget that applies with what its current period has used, in
    one statement (the header reads it on every page, the chat after every reply, the
    team page for everyone at once)."""
    users = get_user_model()
    return f"""
SELECT
    m.id,
    (SELECT coalesce(sum(r.cost), 0)::text FROM billing_dailypersonusage r
     WHERE r.user_id = m.id AND r.day >= %(month)s::date),
    (SELECT json_agg(json_build_array(
         b.id, b.period, b.limit_usd::text, (coalesce(p.spent, 0) + coalesce(p.held, 0))::text,
         CASE WHEN b.group_id IS NOT NULL THEN 'group' WHEN b.person_id IS NOT NULL THEN 'own' ELSE 'user' END,
         coalesce(u."{users.USERNAME_FIELD}", g.name)))
     FROM billing_budget b
     LEFT JOIN {sql.table(users)} u ON u.id = coalesce(b.user_id, b.person_id)
     LEFT JOIN auth_group g ON g.id = b.group_id
     LEFT JOIN billing_budgetperiod p ON p.budget_id = b.id AND p.start =
         CASE b.period WHEN 'day' THEN %(day)s::date WHEN 'week' THEN %(week)s::date ELSE %(month)s::date END
     WHERE b.user_id = m.id
        OR b.person_id = m.id
        OR b.group_id IN (SELECT g2.group_id FROM auth_user_groups g2 WHERE g2.user_id = m.id))
FROM unnest(%(users)s::bigint[]) AS m(id)
"""


def _summary(spent: str, budgets: list[list[Any]] | None) -> SpendSummary:
    tightest = min(
        (
            (max(Decimal(limit) - Decimal(used), Decimal(0)), budget_id, period, kind, owner, Decimal(limit))
            for budget_id, period, limit, used, kind, owner in budgets or []
        ),
        default=None,
    )
    if tightest is None:
        return SpendSummary(spent=Decimal(spent), remaining=None, budget=None)
    remaining, _, period, kind, owner, limit = tightest
    label = budget_label(period, kind, owner)
    return SpendSummary(spent=Decimal(spent), remaining=remaining, budget=label, limit=limit)


def spend_summaries(user_ids: list[int]) -> dict[int, SpendSummary]:
    """What `billing.budgets.status_for` would say of each user's tightest budget, with this month's
    spend, without creating the current period rows it reads (a missing one has used nothing)."""
    day = today()
    rows = sql.fetch(
        _spend_statement(),
        {
            "users": list(user_ids),
            "day": period_start(Period.DAY, day),
            "week": period_start(Period.WEEK, day),
            "month": period_start(Period.MONTH, day),
        },
    )
    return {user_id: _summary(spent, budgets) for user_id, spent, budgets in rows}


def spend_summary(user: Any) -> SpendSummary:
    """`spend_summaries` of one user."""
    return spend_summaries([user.pk])[user.pk]

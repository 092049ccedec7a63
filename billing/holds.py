"""Holds: the worst case of a call in flight, reserved against every budget that applies.

Invariant, under any concurrency and across processes: for every budget period, spent + held <= limit.
It holds because every change of `held` or `spent` happens with the period rows locked
(SELECT ... FOR UPDATE, always in id order so two calls never deadlock), and a hold is only added
after checking it fits every locked row.

Placing a hold is one SQL statement (`_PLACE`), because it runs before every model call and each round
trip to PostgreSQL costs 0.1-1 ms: the Django ORM version took six statements plus BEGIN/COMMIT. Being
one statement it is atomic without a transaction block: it finds the user's budgets, locks their current
periods in id order, and only when every one of them has room adds the amount to each and records the
hold; otherwise it changes nothing and returns what it saw, for the refusal message.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from billing.budgets import applicable_budgets, current_period, period_start, today
from billing.models import ADJECTIVE, Budget, BudgetPeriod, Hold, Period
from orweb import sql
from orweb.errors import BudgetExceeded
from orweb.money import format_usd

logger = logging.getLogger(__name__)

DEFAULT_HOLD_TTL = dt.timedelta(minutes=15)

# `budgets`: every budget of the user, of their groups and their own cap, with the start of its current period.
# `locked`: those budgets' current period rows, locked in id order (a missing row shows as found < wanted).
# `verdict`: whether every budget has its row and room for the amount; only then do `held` and the hold
# rows change. The final SELECT always returns at least one row (the verdict, with each locked period).
_PLACE = """
WITH budgets AS MATERIALIZED (
    SELECT b.id, b.limit_usd,
           CASE b.period WHEN %(day_period)s THEN %(day)s::date
                         WHEN %(week_period)s THEN %(week)s::date
                         ELSE %(month)s::date END AS start
    FROM billing_budget b
    WHERE b.user_id = %(user)s
       OR b.person_id = %(user)s
       OR b.group_id IN (SELECT g.group_id FROM auth_user_groups g WHERE g.user_id = %(user)s)
),
locked AS MATERIALIZED (
    SELECT p.id, p.budget_id, p.spent, p.held, b.limit_usd
    FROM billing_budgetperiod p JOIN budgets b ON b.id = p.budget_id AND p.start = b.start
    ORDER BY p.id
    FOR UPDATE OF p
),
verdict AS (
    SELECT (SELECT count(*) FROM budgets) AS wanted, count(*) AS found,
           coalesce(bool_and(l.spent + l.held + %(amount)s <= l.limit_usd), false) AS fits
    FROM locked l
),
grown AS (
    UPDATE billing_budgetperiod p SET held = p.held + %(amount)s
    FROM locked l, verdict v
    WHERE p.id = l.id AND v.found > 0 AND v.found = v.wanted AND v.fits
    RETURNING p.id
),
hold AS (
    INSERT INTO billing_hold (id, user_id, amount, created, expires_at)
    SELECT %(hold)s, %(user)s, %(amount)s, %(now)s, %(expires)s
    FROM verdict v WHERE v.found > 0 AND v.found = v.wanted AND v.fits
    RETURNING id
),
links AS (
    INSERT INTO billing_hold_periods (hold_id, budgetperiod_id) SELECT h.id, l.id FROM hold h, locked l
)
SELECT v.wanted, v.found, v.fits, l.budget_id, l.spent, l.held, l.limit_usd
FROM verdict v LEFT JOIN locked l ON true
ORDER BY l.budget_id
"""


def place_hold(
    user: Any, amount: Decimal, *, ttl: dt.timedelta = DEFAULT_HOLD_TTL, hold_id: uuid.UUID | None = None
) -> Hold | None:
    """Reserve `amount` against each budget of the user, or raise BudgetExceeded naming the first that
    can't cover it. None when nothing needs holding (no budget applies, or the call is free). `hold_id`
    lets the caller write the hold's id down (billing.attempts) before the hold exists."""
    if amount <= 0:
        return None
    day = today()
    now = timezone.now()
    params = {
        "user": user.pk,
        "amount": amount,
        "hold": hold_id or uuid.uuid4(),
        "now": now,
        "expires": now + ttl,
        "day_period": Period.DAY,
        "week_period": Period.WEEK,
        "day": day,
        "week": period_start(Period.WEEK, day),
        "month": period_start(Period.MONTH, day),
    }
    for attempt in range(2):
        rows = sql.fetch(_PLACE, params)
        wanted, found, fits = rows[0][:3]
        if wanted == 0:
            return None
        if found == wanted:
            break
        if attempt == 0:
            _create_missing_periods(user, day)
    else:
        raise RuntimeError(f"The budget periods of user {user.pk} could not be created.")
    if not fits:
        _refuse(amount, [row[3:] for row in rows])
    hold = Hold(id=params["hold"], user=user, amount=amount, created=now, expires_at=params["expires"])
    hold._state.adding = False
    hold._state.db = connection.alias
    return hold


def _create_missing_periods(user: Any, day: dt.date) -> None:
    """First call of a period: make each budget's row (race-safe on the unique key), then lock again."""
    for budget in applicable_budgets(user):
        current_period(budget, day)


def _refuse(amount: Decimal, periods: list[tuple[int, Decimal, Decimal, Decimal]]) -> None:
    """Raise BudgetExceeded for the first budget (by id) the amount doesn't fit, as it stood when locked."""
    # The statement refused because one of these has no room, so `next` finds one.
    budget_id, remaining = next(
        (budget_id, max(limit - spent - held, Decimal(0)))
        for budget_id, spent, held, limit in periods
        if amount > limit - spent - held
    )
    budget = Budget.objects.select_related("user", "group", "person").get(pk=budget_id)
    if budget.is_own_cap:
        raise BudgetExceeded(
            f"Your own {ADJECTIVE[budget.period]} cap of {format_usd(budget.limit_usd)} can't cover this request: "
            f"it needs up to {format_usd(amount)} and {format_usd(remaining)} remains. You set this cap yourself; "
            f"raise or remove it on your usage page ({reverse('account:usage')}).",
            budget=f"{ADJECTIVE[budget.period]} cap you set yourself (change it on your usage page)",
            remaining=remaining,
        )
    raise BudgetExceeded(
        f"The {budget.label} can't cover this request: it needs up to {format_usd(amount)} and "
        f"{format_usd(remaining)} remains.",
        budget=budget.label,
        remaining=remaining,
    )


def release(hold_id: Any, *, now: dt.datetime | None = None, charge: Decimal = Decimal(0)) -> bool:
    """Give a hold's amount back to its periods, once (False if it was already released), and add
    `charge` to their spending in the same update.

    Must run inside the caller's transaction. Locks the hold first, then its periods in id order, the
    same order as `billing.ledger.settle`.
    """
    if not Hold.objects.filter(pk=hold_id, released_at=None).update(released_at=now or timezone.now()):
        return False
    rows = list(Hold.periods.through.objects.filter(hold_id=hold_id).values_list("budgetperiod_id", "hold__amount"))
    if rows:
        period_ids = sorted(period_id for period_id, _ in rows)
        amount = rows[0][1]
        list(BudgetPeriod.objects.select_for_update().filter(pk__in=period_ids).order_by("pk").values_list("pk"))
        BudgetPeriod.objects.filter(pk__in=period_ids).update(held=F("held") - amount, spent=F("spent") + charge)
    return True


def release_expired(*, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Release holds whose call never settled (a crashed process): their budget is usable again."""
    now = now or timezone.now()
    expired = list(Hold.objects.filter(released_at=None, expires_at__lt=now).values_list("pk", flat=True)[:batch])
    released = 0
    for hold_id in expired:
        with transaction.atomic():
            released += release(hold_id, now=now)
    if released:
        logger.warning("Released %d expired holds", released)
    return released

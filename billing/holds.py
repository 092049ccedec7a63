"""Holds: the worst case of a call in flight, reserved against every budget that applies.

Invariant, under any concurrency and across processes: for every budget period, spent + held <= limit.
It holds because every change of `held` or `spent` happens with the period rows locked
(SELECT ... FOR UPDATE, always in id order so two calls never deadlock), and a hold is only added
after checking it fits every locked row.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.budgets import applicable_budgets, current_period, period_start, today
from billing.models import Budget, BudgetPeriod, Hold
from gateway.errors import BudgetExceeded

logger = logging.getLogger(__name__)

DEFAULT_HOLD_TTL = dt.timedelta(minutes=15)


def place_hold(user: Any, amount: Decimal, *, ttl: dt.timedelta = DEFAULT_HOLD_TTL) -> Hold | None:
    """Reserve `amount` against each budget of the user, or raise BudgetExceeded naming the first that
    can't cover it. None when nothing needs holding (no budget applies, or the call is free)."""
    if amount <= 0:
        return None
    budgets = applicable_budgets(user)
    if not budgets:
        return None
    with transaction.atomic():
        locked = _lock_current_periods(budgets)
        for budget in budgets:
            period = locked[budget.pk]
            remaining = budget.limit_usd - period.spent - period.held
            if amount > remaining:
                raise BudgetExceeded(
                    f"The {budget.label} can't cover this request: it needs up to ${amount:.4f} "
                    f"and ${max(remaining, Decimal(0)):.4f} remains.",
                    budget=budget.label,
                    remaining=max(remaining, Decimal(0)),
                )
        period_ids = [period.pk for period in locked.values()]
        BudgetPeriod.objects.filter(pk__in=period_ids).update(held=F("held") + amount)
        hold = Hold.objects.create(user=user, amount=amount, expires_at=timezone.now() + ttl)
        hold.periods.add(*period_ids)
    return hold


def _lock_current_periods(budgets: list[Budget]) -> dict[int, BudgetPeriod]:
    """This period's row of each budget, locked in id order (created first where missing)."""
    starts = {budget.pk: period_start(budget.period, today()) for budget in budgets}

    def lock() -> dict[int, BudgetPeriod]:
        rows = BudgetPeriod.objects.select_for_update().filter(
            budget_id__in=starts, start__in=set(starts.values())
        )
        return {p.budget_id: p for p in rows.order_by("pk") if p.start == starts[p.budget_id]}

    locked = lock()
    if len(locked) < len(budgets):
        for budget in budgets:
            if budget.pk not in locked:
                current_period(budget)
        locked = lock()
    return locked


def release(hold_id: Any, *, now: dt.datetime | None = None, charge: Decimal = Decimal(0)) -> bool:
    """Give a hold's amount back to its periods, once (False if it was already released), and add
    `charge` to their spending in the same update.

    Must run inside the caller's transaction (settle releases together with charging the cost).
    """
    if not Hold.objects.filter(pk=hold_id, released_at=None).update(released_at=now or timezone.now()):
        return False
    rows = list(
        Hold.periods.through.objects.filter(hold_id=hold_id).values_list("budgetperiod_id", "hold__amount")
    )
    if rows:
        period_ids = sorted(period_id for period_id, _ in rows)
        amount = rows[0][1]
        list(
            BudgetPeriod.objects.select_for_update()
            .filter(pk__in=period_ids)
            .order_by("pk")
            .values_list("pk")
        )
        BudgetPeriod.objects.filter(pk__in=period_ids).update(
            held=F("held") - amount, spent=F("spent") + charge
        )
    return True


def release_expired(*, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Release holds whose call never settled (a crashed process): their budget is usable again."""
    now = now or timezone.now()
    expired = list(
        Hold.objects.filter(released_at=None, expires_at__lt=now).values_list("pk", flat=True)[:batch]
    )
    released = 0
    for hold_id in expired:
        with transaction.atomic():
            released += release(hold_id, now=now)
    if released:
        logger.warning("Released %d expired holds", released)
    return released

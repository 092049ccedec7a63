"""A person's own cap: a limit any member sets on their own spending, below what the admins allow.

It is a `Budget` row owned through `person` (never `user` or `group`, which are the admins'), so
`billing.budgets.applicable_budgets` returns it beside the admins' budgets and `billing.holds` reserves and
settles against it under the same row locks: concurrent calls can't push its spent + held past its limit.
It can only lower what the person may spend: it must be below the tightest admin budget that applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.budgets import applicable_budgets
from billing.models import Budget, Period
from orweb.money import format_usd

MAX_CAP = Decimal(1_000_000)

# How many periods of the first kind one period of the second can touch: a month spans parts of up to 6
# weeks (Monday to Sunday) and up to 31 days, a week 7 days.
_SPANS = {(Period.DAY, Period.WEEK): 7, (Period.DAY, Period.MONTH): 31, (Period.WEEK, Period.MONTH): 6}


class CapRefused(ValueError):
    """The cap asked for is not a lower limit than the admins', or not an amount at all."""


@dataclass(frozen=True)
class Ceiling:
    """The tightest admin budget that applies, as the most it lets the person spend in one cap period."""

    budget: Budget
    most: Decimal

    def explain(self, period: str) -> str:
        limit = format_usd(self.budget.limit_usd)
        if self.most == self.budget.limit_usd:
            return f"the {self.budget.label} is {limit}"
        return f"the {self.budget.label} is {limit}, at most {format_usd(self.most)} in a {period}"


def own_cap(user: Any) -> Budget | None:
    """The cap the person set on themselves, if any."""
    return Budget.objects.filter(person=user).first()


def admin_ceiling(user: Any, period: str) -> Ceiling | None:
    """The admins' tightest budget for the person (their own or any group's), measured in periods of the
    cap's length: a daily budget of $5 lets them spend at most $155 in a month. None when none applies."""
    ceilings = [
        Ceiling(budget, budget.limit_usd * _SPANS.get((budget.period, period), 1))
        for budget in applicable_budgets(user)
        if not budget.is_own_cap
    ]
    return min(ceilings, key=lambda ceiling: (ceiling.most, ceiling.budget.pk), default=None)


def refusal(user: Any, amount: Decimal, period: str) -> str | None:
    """Why this cap can't be set, or None when it can: it must be an amount of USD from 0 to MAX_CAP and
    below what the admins allow."""
    if period not in Period.values:
        return f"The period must be one of {', '.join(Period.values)}."
    if not amount.is_finite() or amount < 0:
        return "A cap must be an amount of USD of 0 or more."
    if amount > MAX_CAP:
        return f"A cap can be at most {format_usd(MAX_CAP)}."
    ceiling = admin_ceiling(user, period)
    if ceiling is not None and amount >= ceiling.most:
        return f"Your own cap must be below what your admins allow: {ceiling.explain(period)}."
    return None


def set_own_cap(user: Any, amount: Decimal, period: str) -> Budget:
    """Create or change the person's own cap; CapRefused when it would not lower what they may spend."""
    amount = Decimal(amount)
    reason = refusal(user, amount, period)
    if reason:
        raise CapRefused(reason)
    budget, _ = Budget.objects.update_or_create(person=user, defaults={"limit_usd": amount, "period": period})
    return budget


def remove_own_cap(user: Any) -> bool:
    """Drop the person's own cap (the admins' budgets still apply); False when they had none."""
    deleted, _ = Budget.objects.filter(person=user).delete()
    return deleted > 0

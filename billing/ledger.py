"""Settling a call: one ledger row per upstream generation, the daily rollup, the budgets, the hold.

All in one transaction, so the spend pages, the budgets and the ledger can never disagree. The ledger
row is unique on the generation id: a redelivered or duplicated settle of the same generation finds
the existing row and charges nothing again.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from billing.budgets import applicable_budgets, current_period
from billing.holds import release
from billing.models import BudgetPeriod, DailyUsage, Hold, LedgerEntry

logger = logging.getLogger(__name__)

ERROR_STATUSES = (LedgerEntry.Status.ERROR, LedgerEntry.Status.INCOMPLETE)


@dataclass
class Outcome:
    """Everything the ledger records about one call."""

    user_id: int
    source: str
    requested_model: str
    status: str
    cost: Decimal = Decimal(0)
    cost_source: str = LedgerEntry.CostSource.NONE
    served_model: str = ""
    provider: str = ""
    generation_id: str | None = None
    api_key_id: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    error: str = ""
    ttft_ms: int | None = None
    latency_ms: int = 0


def settle(outcome: Outcome, *, hold_id: Any = None) -> LedgerEntry:
    """Record the call, charge its cost to the budgets, release its hold; once per generation."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    generation_id=outcome.generation_id or None,
                    user_id=outcome.user_id,
                    source=outcome.source,
                    api_key_id=outcome.api_key_id,
                    requested_model=outcome.requested_model,
                    served_model=outcome.served_model,
                    provider=outcome.provider or "",
                    prompt_tokens=outcome.prompt_tokens,
                    completion_tokens=outcome.completion_tokens,
                    cached_tokens=outcome.cached_tokens,
                    reasoning_tokens=outcome.reasoning_tokens,
                    cost=outcome.cost,
                    cost_source=outcome.cost_source,
                    status=outcome.status,
                    error=outcome.error[:300],
                    ttft_ms=outcome.ttft_ms,
                    latency_ms=outcome.latency_ms,
                    hold_id=hold_id,
                )
        except IntegrityError:
            if not outcome.generation_id:
                raise
            if hold_id is not None:
                release(hold_id)
            logger.info("Generation %s was already settled", outcome.generation_id)
            return LedgerEntry.objects.get(generation_id=outcome.generation_id)
        if hold_id is None or not release(hold_id, charge=entry.cost):
            _charge(entry, _periods_to_charge(entry, hold_id), entry.cost)
        _bump_rollup(entry, requests=1, cost=entry.cost)
        if entry.cost_source == LedgerEntry.CostSource.ESTIMATED and entry.generation_id:
            transaction.on_commit(lambda: _enqueue_reconcile(entry.pk))
    return entry


def _periods_to_charge(entry: LedgerEntry, hold_id: Any) -> list[int]:
    """The periods the call was held against; without a hold, the current periods of its budgets."""
    if entry.cost <= 0:
        return []
    if hold_id is not None:
        return list(
            Hold.periods.through.objects.filter(hold_id=hold_id).values_list("budgetperiod_id", flat=True)
        )
    return [current_period(budget).pk for budget in applicable_budgets(entry.user)]


def _charge(entry: LedgerEntry, period_ids: list[int], amount: Decimal) -> None:
    if not period_ids or not amount:
        return
    period_ids = sorted(period_ids)
    list(BudgetPeriod.objects.select_for_update().filter(pk__in=period_ids).order_by("pk").values_list("pk"))
    BudgetPeriod.objects.filter(pk__in=period_ids).update(spent=F("spent") + amount)


def rollup_day(created: dt.datetime) -> dt.date:
    return created.astimezone(dt.UTC).date()


def _bump_rollup(
    entry: LedgerEntry,
    *,
    requests: int,
    cost: Decimal,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> None:
    """Add to the day's rollup row of this user, model and source (created on first use, race-safe)."""
    key = {
        "day": rollup_day(entry.created),
        "user_id": entry.user_id,
        "model": entry.served_model or entry.requested_model,
        "source": entry.source,
    }
    changes = {
        "requests": F("requests") + requests,
        "errors": F("errors") + (requests if entry.status in ERROR_STATUSES else 0),
        "prompt_tokens": F("prompt_tokens")
        + (entry.prompt_tokens if prompt_tokens is None else prompt_tokens),
        "completion_tokens": F("completion_tokens")
        + (entry.completion_tokens if completion_tokens is None else completion_tokens),
        "cost": F("cost") + cost,
    }
    if DailyUsage.objects.filter(**key).update(**changes):
        return
    try:
        with transaction.atomic():
            DailyUsage.objects.create(**key)
    except IntegrityError:
        pass
    DailyUsage.objects.filter(**key).update(**changes)


def correct(entry: LedgerEntry, *, cost: Decimal, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """Apply a corrected cost and token counts to an entry's rollup and budget periods; the difference.

    The caller holds the entry's row lock and saves the entry itself.
    """
    difference = cost - entry.cost
    period_ids = (
        list(
            Hold.periods.through.objects.filter(hold_id=entry.hold_id).values_list(
                "budgetperiod_id", flat=True
            )
        )
        if entry.hold_id
        else [current_period(b, rollup_day(entry.created)).pk for b in applicable_budgets(entry.user)]
    )
    _charge(entry, period_ids, difference)
    _bump_rollup(
        entry,
        requests=0,
        cost=difference,
        prompt_tokens=prompt_tokens - entry.prompt_tokens,
        completion_tokens=completion_tokens - entry.completion_tokens,
    )
    return difference


def _enqueue_reconcile(entry_id: int) -> None:
    """Ask a worker to fetch the billed cost soon; if the broker is down the periodic sweep catches up."""
    from billing.tasks import reconcile_estimated

    try:
        reconcile_estimated.apply_async(kwargs={"entry_id": entry_id}, countdown=5)
    except Exception:
        logger.warning("Could not enqueue the reconciliation of ledger entry %s", entry_id, exc_info=True)

"""Settling a call: one ledger row per upstream generation, the daily rollups, the budgets, the hold.

All in one transaction, so the spend pages, the budgets and the ledger can never disagree. The ledger
row is unique on the generation id: a redelivered or duplicated settle of the same generation finds
the existing row and charges nothing again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from celery import current_app
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.budgets import applicable_budgets, current_period
from billing.models import (
    BudgetPeriod,
    DailyKeyUsage,
    DailyModelUsage,
    DailyPersonSourceUsage,
    DailyPersonUsage,
    DailyUsage,
    Hold,
    LedgerEntry,
)
from orweb import sql

logger = logging.getLogger(__name__)

RECONCILE_TASK = "billing.tasks.reconcile_estimated"  # by name: the task module imports this one
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
    cache_write_tokens: int = 0
    cost_details: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    ttft_ms: int | None = None
    latency_ms: int = 0
    call_id: str | None = None


def settle(outcome: Outcome, *, hold_id: Any = None) -> LedgerEntry:
    """Record the call, charge its cost to the budgets, release its hold; once per generation."""
    now = timezone.now()
    entry = LedgerEntry(
        call_id=outcome.call_id or uuid.uuid4(),
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
        cache_write_tokens=outcome.cache_write_tokens,
        cost_details=outcome.cost_details,
        cost=outcome.cost,
        cost_source=outcome.cost_source,
        status=outcome.status,
        error=outcome.error[:300],
        ttft_ms=outcome.ttft_ms,
        latency_ms=outcome.latency_ms,
        hold_id=hold_id,
        created=now,
    )
    # Without a hold the cost goes to the budgets' current periods, found (or created) and locked by the
    # ORM before the statement (periods before the rollup row, the one lock order): that needs a
    # transaction. With a hold the one statement is atomic by itself.
    charge_current = hold_id is None and outcome.cost > 0
    with transaction.atomic() if charge_current else contextlib.nullcontext():
        period_ids = _lock_periods(_current_period_ids(outcome.user_id)) if charge_current else []
        [(entry_id, cost)] = sql.fetch(_settle_sql(), _settle_params(entry, now))
        if entry_id is None:  # this generation (or this call) is already recorded: a replay or redelivery
            logger.info("Generation %s of call %s was already settled", outcome.generation_id, entry.call_id)
            if outcome.generation_id:
                return LedgerEntry.objects.get(generation_id=outcome.generation_id)
            return LedgerEntry.objects.get(call_id=entry.call_id)
        entry.pk, entry.cost = entry_id, cost
        entry._state.adding = False
        entry._state.db = connection.alias
        if period_ids and entry.cost:
            BudgetPeriod.objects.filter(pk__in=period_ids).update(spent=F("spent") + entry.cost)
        if entry.cost_source == LedgerEntry.CostSource.ESTIMATED and entry.generation_id:
            transaction.on_commit(lambda: _enqueue_reconcile(entry.pk))
    return entry


# One statement instead of ten (insert, release, lock, charge, rollup and the savepoints around them):
# settle runs after every call, and each round trip to PostgreSQL costs 0.1-1 ms.
# Locks are taken in one order everywhere money moves: hold, budget periods by id, then the rollup row
# (`holds.release`, `correct` and reconciliation keep it too), so settling and reconciling never deadlock.
# `entry`: the ledger row, or nothing when this generation or call is already recorded (a redelivery).
# `released`: the hold, once.
# `locked`: the hold's periods, locked in id order, only when there is something to change.
# `charged`: held minus the hold's amount if released now, spent plus the cost if the entry is new.
# `rollup`: the day's row of this user, model and source, created or added to, after `charged` (it reads
# charged's count, so PostgreSQL can't run it first and lock the rollup row before the periods).
# `model_rollup`, `person_rollup`, `source_rollup`, `key_rollup`: the team's row of the day, model and source,
# the person's row of the day, their row of the day and source, then (for a call made with an API key) the
# key's row of the day, model and source, each after the one before (the same chaining): the rollup tables
# are always locked in this order.
_SETTLE = """
WITH entry AS (
    INSERT INTO billing_ledgerentry ({columns}) VALUES ({values})
    ON CONFLICT DO NOTHING
    RETURNING id, cost
),
released AS (
    UPDATE billing_hold SET released_at = %(now)s
    WHERE id = %(hold)s AND released_at IS NULL
    RETURNING amount
),
locked AS MATERIALIZED (
    SELECT p.id FROM billing_budgetperiod p
    WHERE p.id IN (SELECT hp.budgetperiod_id FROM billing_hold_periods hp WHERE hp.hold_id = %(hold)s)
      AND (EXISTS (SELECT 1 FROM released) OR EXISTS (SELECT 1 FROM entry))
    ORDER BY p.id
    FOR UPDATE OF p
),
charged AS (
    UPDATE billing_budgetperiod p
    SET held = p.held - coalesce((SELECT amount FROM released), 0),
        spent = p.spent + coalesce((SELECT cost FROM entry), 0)
    FROM locked l WHERE p.id = l.id
    RETURNING p.id
),
{rollups}
SELECT e.id, e.cost FROM (SELECT 1) one LEFT JOIN entry e ON true
"""


@functools.cache
def _entry_fields() -> list[Any]:
    return [field for field in LedgerEntry._meta.concrete_fields if not field.primary_key]


# The rollups in the order `settle` locks them: (CTE, table, key columns). Each adds the entry's counts to its
# row of the key, after the one before it.
_ROLLUPS = (
    ("rollup", "billing_dailyusage", ("day", "user_id", "model", "source")),
    ("model_rollup", "billing_dailymodelusage", ("day", "model", "source")),
    ("person_rollup", "billing_dailypersonusage", ("day", "user_id")),
    ("source_rollup", "billing_dailypersonsourceusage", ("day", "user_id", "source")),
    ("key_rollup", "billing_dailykeyusage", ("day", "api_key_id", "user_id", "model", "source")),
)
_KEY_VALUES = {
    "day": "%(day)s",
    "user_id": "%(user)s",
    "model": "%(model)s",
    "source": "%(source)s",
    "api_key_id": "%(key)s",
}
_SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")


def _rollup_ctes() -> str:
    ctes, after = [], "charged"
    for name, table, keys in _ROLLUPS:
        values = ", ".join(_KEY_VALUES[key] for key in keys)
        only_keys = "%(key)s::bigint IS NOT NULL AND " if "api_key_id" in keys else ""
        sums = ", ".join(f"{column} = r.{column} + excluded.{column}" for column in _SUMS)
        ctes.append(
            f"{name} AS (INSERT INTO {table} AS r ({', '.join(keys + _SUMS)})"
            f" SELECT {values}, 1, %(errors)s, %(prompt_tokens)s, %(completion_tokens)s, e.cost FROM entry e"
            f" WHERE {only_keys}(SELECT count(*) FROM {after}) >= 0"
            f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sums} RETURNING 1)"
        )
        after = name
    return ",\n".join(ctes)


@functools.cache
def _settle_sql() -> str:
    """The statement with the ledger's columns taken from the model, so a new field can't be missed."""
    fields = _entry_fields()
    return _SETTLE.format(
        columns=", ".join(connection.ops.quote_name(field.column) for field in fields),
        values=", ".join(f"%(entry_{field.column})s" for field in fields),
        rollups=_rollup_ctes(),
    )


def _settle_params(entry: LedgerEntry, now: dt.datetime) -> dict[str, Any]:
    params: dict[str, Any] = {
        f"entry_{field.column}": field.get_db_prep_save(getattr(entry, field.attname), connection)
        for field in _entry_fields()
    }
    params.update(
        now=now,
        hold=entry.hold_id,
        day=rollup_day(now),
        user=entry.user_id,
        key=entry.api_key_id,
        model=entry.served_model or entry.requested_model,
        source=entry.source,
        errors=1 if entry.status in ERROR_STATUSES else 0,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
    )
    return params


def _current_period_ids(user_id: int, day: dt.date | None = None) -> list[int]:
    return [current_period(budget, day).pk for budget in applicable_budgets(user_id)]


def _lock_periods(period_ids: list[int]) -> list[int]:
    """Lock budget periods in id order (the one order, so two transactions never wait on each other)."""
    period_ids = sorted(period_ids)
    if period_ids:
        list(BudgetPeriod.objects.select_for_update().filter(pk__in=period_ids).order_by("pk").values_list("pk"))
    return period_ids


def _charge(period_ids: list[int], amount: Decimal) -> None:
    if period_ids and amount:
        BudgetPeriod.objects.filter(pk__in=_lock_periods(period_ids)).update(spent=F("spent") + amount)


def rollup_day(created: dt.datetime) -> dt.date:
    return created.astimezone(dt.UTC).date()


def _bump_rollup(entry: LedgerEntry, *, cost: Decimal, prompt_tokens: int, completion_tokens: int) -> None:
    """Add a correction to the entry's rows of the rollups (person, model and source; team, model and source;
    person; person and source; key, model and source), in the order `settle` locks them: it wrote them in the
    same statement as the entry, so they are there."""
    day, model, source = rollup_day(entry.created), entry.served_model or entry.requested_model, entry.source
    sums = {
        "cost": F("cost") + cost,
        "prompt_tokens": F("prompt_tokens") + prompt_tokens,
        "completion_tokens": F("completion_tokens") + completion_tokens,
    }
    DailyUsage.objects.filter(day=day, user_id=entry.user_id, model=model, source=source).update(**sums)
    DailyModelUsage.objects.filter(day=day, model=model, source=source).update(**sums)
    DailyPersonUsage.objects.filter(day=day, user_id=entry.user_id).update(**sums)
    DailyPersonSourceUsage.objects.filter(day=day, user_id=entry.user_id, source=source).update(**sums)
    if entry.api_key_id is not None:
        DailyKeyUsage.objects.filter(
            day=day, api_key_id=entry.api_key_id, user_id=entry.user_id, model=model, source=source
        ).update(**sums)


def correct(entry: LedgerEntry, *, cost: Decimal, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """Apply a corrected cost and token counts to an entry's rollup and budget periods; the difference.

    The caller holds the entry's row lock and saves the entry itself.
    """
    difference = cost - entry.cost
    period_ids = (
        list(Hold.periods.through.objects.filter(hold_id=entry.hold_id).values_list("budgetperiod_id", flat=True))
        if entry.hold_id
        else _current_period_ids(entry.user_id, rollup_day(entry.created))
    )
    _charge(period_ids, difference)
    _bump_rollup(
        entry,
        cost=difference,
        prompt_tokens=prompt_tokens - entry.prompt_tokens,
        completion_tokens=completion_tokens - entry.completion_tokens,
    )
    return difference


def _enqueue_reconcile(entry_id: int) -> None:
    """Ask a worker to fetch the billed cost soon; if the broker is down the periodic sweep catches up."""
    try:
        current_app.send_task(RECONCILE_TASK, kwargs={"entry_id": entry_id}, countdown=5)
    except Exception:
        logger.warning("Could not enqueue the reconciliation of ledger entry %s", entry_id, exc_info=True)

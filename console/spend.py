"""Sums of spend for a console selection, grouped by any of day, person, model, source and group.

Each query reads the smallest of billing's rollups that answers it (`table_for`): the team's per day, model
and source; the per day and person; the daily rollup per day, person, model and source (by its `(user,
day)` and `(model, day)` indexes). Only a selection filtered by API key reads the ledger, which alone keeps
the key (by its `(api_key_id, created)` index). Groups are today's memberships: a person in two groups
counts in both, one in none under "(no group)".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate

from billing.ledger import ERROR_STATUSES
from billing.models import DailyModelUsage, DailyPersonUsage, DailyUsage, LedgerEntry
from console.filters import Selection

NO_GROUP = "(no group)"


@dataclass(frozen=True)
class Figures:
    """Sums over some rows: money, calls, failed calls, tokens."""

    cost: Decimal = Decimal(0)
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            cost=self.cost + other.cost,
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class Row:
    """One group of rows: its key (by dimension name) and its figures."""

    key: dict[str, Any]
    figures: Figures


def _username_field() -> str:
    return f"user__{get_user_model().USERNAME_FIELD}"


def _sums(*, tokens: bool = True) -> dict[str, Any]:
    sums: dict[str, Any] = {"cost": Sum("cost"), "requests": Sum("requests"), "errors": Sum("errors")}
    if tokens:
        sums.update(prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"))
    return sums


@dataclass(frozen=True)
class _Table:
    """One place the sums can be read from: the dimensions it can group and filter by, and whether it
    keeps token counts."""

    name: str
    dimensions: frozenset[str]
    tokens: bool


# Smallest first: at 10M ledger rows (500 people, 60 models, 90 days) the team rollup holds ~20k rows, the
# person rollup ~45k, the daily rollup ~1.5M.
MODEL_ROLLUP = _Table("model rollup", frozenset({"day", "model", "source"}), tokens=True)
PERSON_ROLLUP = _Table("person rollup", frozenset({"day", "person", "group"}), tokens=False)
ROLLUP = _Table("rollup", frozenset({"day", "person", "model", "source", "group"}), tokens=True)
LEDGER = _Table("ledger", frozenset({"day", "person", "model", "source", "group", "key"}), tokens=True)


def table_for(selection: Selection, by: tuple[str, ...] = (), *, tokens: bool = False) -> _Table:
    """The smallest table that answers the selection's filters grouped `by` those dimensions: team-wide
    by model or source from the team rollup, by person or group from the person rollup, a person or group
    by model or source from the daily rollup, and only a filter by API key from the ledger."""
    needed = set(by) | {name for name in ("person", "group", "model", "source", "key") if getattr(selection, name)}
    for table in (MODEL_ROLLUP, PERSON_ROLLUP, ROLLUP):
        if needed <= table.dimensions and (table.tokens or not tokens):
            return table
    return LEDGER


def _rows(table: _Table, selection: Selection) -> tuple[QuerySet, dict[str, Any]]:
    if table is LEDGER:
        return _ledger(selection)
    model = {MODEL_ROLLUP: DailyModelUsage, PERSON_ROLLUP: DailyPersonUsage, ROLLUP: DailyUsage}[table]
    rows = model.objects.filter(day__range=(selection.start, selection.end))
    columns = {"day": F("day")}
    if "person" in table.dimensions:
        columns.update(person=F(_username_field()), group=F("user__groups__name"))
    if "model" in table.dimensions:
        columns.update(model=F("model"), source=F("source"))
    if selection.model:
        rows = rows.filter(model=selection.model)
    return rows, {"columns": columns, "sums": _sums(tokens=table.tokens)}


def _ledger(selection: Selection) -> tuple[QuerySet, dict[str, Any]]:
    since = dt.datetime.combine(selection.start, dt.time(), tzinfo=dt.UTC)
    until = dt.datetime.combine(selection.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    rows = LedgerEntry.objects.filter(api_key_id=selection.key.pk, created__gte=since, created__lt=until).alias(
        served=Coalesce(NullIf("served_model", Value("")), "requested_model")
    )
    if selection.model:
        rows = rows.filter(served=selection.model)
    columns = {
        "day": TruncDate("created", tzinfo=dt.UTC),
        "person": F(_username_field()),
        "model": F("served"),
        "source": F("source"),
        "group": F("user__groups__name"),
    }
    sums = {
        "cost": Sum("cost"),
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status__in=ERROR_STATUSES)),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
    }
    return rows, {"columns": columns, "sums": sums}


def _filtered(selection: Selection, by: tuple[str, ...] = (), *, tokens: bool = False) -> tuple[QuerySet, dict]:
    rows, shape = _rows(table_for(selection, by, tokens=tokens), selection)
    if selection.person:
        rows = rows.filter(user=selection.person)
    if selection.group:
        # By subquery, not a join: grouping by group must see every group of each member.
        rows = rows.filter(user_id__in=selection.group.user_set.values("pk"))
    if selection.source:
        rows = rows.filter(source=selection.source)
    return rows, shape


def _figures(row: dict[str, Any]) -> Figures:
    return Figures(
        cost=row["cost"] or Decimal(0),
        requests=row["requests"] or 0,
        errors=row["errors"] or 0,
        prompt_tokens=row.get("prompt_tokens") or 0,
        completion_tokens=row.get("completion_tokens") or 0,
    )


def _row(row: dict[str, Any], by: tuple[str, ...]) -> Row:
    key = {name: row[f"k_{name}"] for name in by}
    if "group" in key and key["group"] is None:
        key["group"] = NO_GROUP
    return Row(key=key, figures=_figures(row))


def grouped(selection: Selection, by: tuple[str, ...], *, limit: int | None = None) -> list[Row]:
    """The selection's sums per distinct value of the `by` dimensions, biggest cost first (then by key);
    token counts only where the table read keeps them (`totals` and `stream` always have them)."""
    rows, shape = _filtered(selection, by)
    names = {f"k_{name}": shape["columns"][name] for name in by}
    query = (
        rows.annotate(**names)
        .values(*names)
        .annotate(**shape["sums"])
        .order_by(F("cost").desc(nulls_last=True), *(F(name).asc(nulls_first=True) for name in names))
    )
    if limit is not None:
        query = query[:limit]
    return [_row(row, by) for row in query]


def totals(selection: Selection) -> Figures:
    """The selection's sums over everything."""
    rows, shape = _filtered(selection, tokens=True)
    return _figures(rows.aggregate(**shape["sums"]))


def stream(selection: Selection, by: tuple[str, ...], chunk: int = 2000) -> Iterator[Row]:
    """`grouped` without a limit, read with a server-side cursor: constant memory however many rows."""
    rows, shape = _filtered(selection, by, tokens=True)
    names = {f"k_{name}": shape["columns"][name] for name in by}
    query = rows.annotate(**names).values(*names).annotate(**shape["sums"]).order_by(*names)
    for row in query.iterator(chunk_size=chunk):
        yield _row(row, by)

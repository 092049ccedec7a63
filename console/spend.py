"""Sums of spend for a console selection, grouped by any of day, person, model, source and group.

Everything reads billing's daily rollup (one row per day, user, served model and source) except a
selection filtered by API key: the rollup does not keep the key, so those sums come from the ledger
(`api_key_id` is indexed; a composite `(api_key_id, created)` index would keep a busy key's range scan
short). Groups are today's memberships: a person in two groups counts in both, one in none under
"(no group)".
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
from billing.models import DailyUsage, LedgerEntry
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


def _rollup(selection: Selection) -> tuple[QuerySet, dict[str, Any]]:
    rows = DailyUsage.objects.filter(day__range=(selection.start, selection.end))
    columns = {
        "day": F("day"),
        "person": F(_username_field()),
        "model": F("model"),
        "source": F("source"),
        "group": F("user__groups__name"),
    }
    sums = {
        "cost": Sum("cost"),
        "requests": Sum("requests"),
        "errors": Sum("errors"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
    }
    return rows.filter(**({"model": selection.model} if selection.model else {})), {"columns": columns, "sums": sums}


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


def _filtered(selection: Selection) -> tuple[QuerySet, dict[str, Any]]:
    rows, shape = _ledger(selection) if selection.key else _rollup(selection)
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
        prompt_tokens=row["prompt_tokens"] or 0,
        completion_tokens=row["completion_tokens"] or 0,
    )


def _row(row: dict[str, Any], by: tuple[str, ...]) -> Row:
    key = {name: row[f"k_{name}"] for name in by}
    if "group" in key and key["group"] is None:
        key["group"] = NO_GROUP
    return Row(key=key, figures=_figures(row))


def grouped(selection: Selection, by: tuple[str, ...], *, limit: int | None = None) -> list[Row]:
    """The selection's sums per distinct value of the `by` dimensions, biggest cost first (then by key)."""
    rows, shape = _filtered(selection)
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
    rows, shape = _filtered(selection)
    return _figures(rows.aggregate(**shape["sums"]))


def stream(selection: Selection, by: tuple[str, ...], chunk: int = 2000) -> Iterator[Row]:
    """`grouped` without a limit, read with a server-side cursor: constant memory however many rows."""
    rows, shape = _filtered(selection)
    names = {f"k_{name}": shape["columns"][name] for name in by}
    query = rows.annotate(**names).values(*names).annotate(**shape["sums"]).order_by(*names)
    for row in query.iterator(chunk_size=chunk):
        yield _row(row, by)

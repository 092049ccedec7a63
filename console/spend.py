"""Sums of spend for a console selection, grouped by any of day, person, model, source and group.

Each query reads the smallest of billing's rollups that answers it (`table_for`): the team's per day, model
and source; per day and person; per day, person and source; the daily rollup per day, person, model and
source (by its `(user, day)` and `(model, day)` indexes); a selection filtered by API key the rollup per
day, key, model and source (by its `(api_key_id, day)` index). None reads the ledger. Groups are today's
memberships: a person in two groups counts in both, one in none under "(no group)".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import F, Model, QuerySet, Sum

from billing.models import DailyKeyUsage, DailyModelUsage, DailyPersonSourceUsage, DailyPersonUsage, DailyUsage
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


SUMS = {name: Sum(name) for name in ("cost", "requests", "errors", "prompt_tokens", "completion_tokens")}


@dataclass(frozen=True)
class _Table:
    """One rollup the sums can be read from, and the dimensions it can group and filter by."""

    name: str
    model: type[Model]
    dimensions: frozenset[str]


# Smallest first: at 10M ledger rows (500 people, 60 models, 90 days) the team rollup holds ~20k rows, the
# person rollup ~45k, the person and source rollup ~160k, the daily rollup ~1.5M. The key rollup is only ever
# read for one key (by its `(api_key_id, day)` index), so its size doesn't matter.
MODEL_ROLLUP = _Table("model rollup", DailyModelUsage, frozenset({"day", "model", "source"}))
PERSON_ROLLUP = _Table("person rollup", DailyPersonUsage, frozenset({"day", "person", "group"}))
SOURCE_ROLLUP = _Table(
    "person and source rollup", DailyPersonSourceUsage, frozenset({"day", "person", "group", "source"})
)
ROLLUP = _Table("rollup", DailyUsage, frozenset({"day", "person", "model", "source", "group"}))
KEY_ROLLUP = _Table("key rollup", DailyKeyUsage, frozenset({"day", "person", "model", "source", "group", "key"}))
TABLES = (MODEL_ROLLUP, PERSON_ROLLUP, SOURCE_ROLLUP, ROLLUP, KEY_ROLLUP)


def table_for(selection: Selection, by: tuple[str, ...] = ()) -> _Table:
    """The smallest table that answers the selection's filters grouped `by` those dimensions: team-wide
    by model or source from the team rollup, by person or group from the person rollup (and the source too
    from the person and source rollup), a person or group by model from the daily rollup, and a filter by API
    key from the key rollup."""
    needed = set(by) | {name for name in ("person", "group", "model", "source", "key") if getattr(selection, name)}
    return next(table for table in TABLES if needed <= table.dimensions)


def _rows(table: _Table, selection: Selection) -> tuple[QuerySet, dict[str, Any]]:
    rows = table.model.objects.filter(day__range=(selection.start, selection.end))
    columns = {"day": F("day")}
    if "person" in table.dimensions:
        # Grouped by the group's id, named after: joining the names made PostgreSQL sort every row by text.
        columns.update(person=F(_username_field()), group=F("user__groups"))
    if "model" in table.dimensions:
        columns.update(model=F("model"))
    if "source" in table.dimensions:
        columns.update(source=F("source"))
    if selection.model:
        rows = rows.filter(model=selection.model)
    if selection.key:
        rows = rows.filter(api_key_id=selection.key.pk)
    return rows, columns


def _filtered(selection: Selection, by: tuple[str, ...] = ()) -> tuple[QuerySet, dict[str, Any]]:
    """The rows of the selection in the table that answers it, and the columns of its dimensions."""
    rows, columns = _rows(table_for(selection, by), selection)
    if selection.person:
        rows = rows.filter(user=selection.person)
    if selection.group:
        # By subquery, not a join: grouping by group must see every group of each member.
        rows = rows.filter(user_id__in=selection.group.user_set.values("pk"))
    if selection.source:
        rows = rows.filter(source=selection.source)
    return rows, columns


def _figures(row: dict[str, Any]) -> Figures:
    return Figures(
        cost=row["cost"] or Decimal(0),
        requests=row["requests"] or 0,
        errors=row["errors"] or 0,
        prompt_tokens=row["prompt_tokens"] or 0,
        completion_tokens=row["completion_tokens"] or 0,
    )


def _group_names(by: tuple[str, ...]) -> dict[Any, str]:
    """Group names by id (and "(no group)" for none), when grouping by group."""
    return {None: NO_GROUP, **dict(Group.objects.values_list("pk", "name"))} if "group" in by else {}


def _row(row: dict[str, Any], by: tuple[str, ...], groups: dict[Any, str]) -> Row:
    key = {name: row[f"k_{name}"] for name in by}
    if "group" in key:
        key["group"] = groups[key["group"]]
    return Row(key=key, figures=_figures(row))


def grouped(selection: Selection, by: tuple[str, ...], *, limit: int | None = None) -> list[Row]:
    """The selection's sums per distinct value of the `by` dimensions, biggest cost first (then by key)."""
    rows, columns = _filtered(selection, by)
    names = {f"k_{name}": columns[name] for name in by}
    query = (
        rows.annotate(**names)
        .values(*names)
        .annotate(**SUMS)
        .order_by(F("cost").desc(nulls_last=True), *(F(name).asc(nulls_first=True) for name in names))
    )
    if limit is not None:
        query = query[:limit]
    groups = _group_names(by)
    return [_row(row, by, groups) for row in query]


def totals(selection: Selection) -> Figures:
    """The selection's sums over everything."""
    rows, _ = _filtered(selection)
    return _figures(rows.aggregate(**SUMS))


def stream(selection: Selection, by: tuple[str, ...], chunk: int = 2000) -> Iterator[Row]:
    """`grouped` without a limit, read with a server-side cursor: constant memory however many rows."""
    rows, columns = _filtered(selection, by)
    names = {f"k_{name}": columns[name] for name in by}
    query = rows.annotate(**names).values(*names).annotate(**SUMS).order_by(*names)
    groups = _group_names(by)
    for row in query.iterator(chunk_size=chunk):
        yield _row(row, by, groups)

"""The spend explorer's content: the range's total against the range before, spend per day stacked by the
dimension the admin picked, and the top people, models, groups and sources, every figure with the link to
the filtered view behind it. The page and its CSV are both built from `explore()`, so the CSV holds
exactly what the page shows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from console.filters import Selection
from console.spend import NO_GROUP, Figures, Row, grouped, totals
from orweb.money import plain_usd

TOP = 10
SERIES = 7  # stacked series on the chart; the rest is one "other" band
OTHER = "other"
FILTER_OF = {"person": "person", "model": "model", "group": "group", "source": "source"}
TITLES = {"person": "people", "model": "models", "group": "groups", "source": "sources"}


@dataclass(frozen=True)
class Line:
    """One row of a top list: a name, its figures, its share of the peak (0–20 for a CSS bar), its link."""

    name: str
    figures: Figures
    level: int
    link: str


@dataclass(frozen=True)
class Day:
    day: dt.date
    cost: Decimal
    requests: int
    link: str


@dataclass(frozen=True)
class Explorer:
    selection: Selection
    total: Figures
    previous: Figures
    days: list[Day]
    chart: dict[str, Any]
    tops: dict[str, list[Line]]

    @property
    def change_percent(self) -> Decimal | None:
        """The total's change against the previous range, in percent; None when that was nothing."""
        if not self.previous.cost:
            return None
        return ((self.total.cost - self.previous.cost) * 100 / self.previous.cost).quantize(Decimal("0.1"))

    @property
    def top_sections(self) -> list[tuple[str, str, list[Line]]]:
        return [(dimension, TITLES[dimension], lines) for dimension, lines in self.tops.items()]

    @property
    def previous_query(self) -> str:
        previous = self.selection.previous()
        return previous.query(preset="custom", start=previous.start.isoformat(), end=previous.end.isoformat())


def level(cost: Decimal, peak: Decimal) -> int:
    """A bar's length in 5% steps of the biggest (0–20): a CSS class, as the CSP forbids style=."""
    return int(cost * 20 / peak) if peak > 0 else 0


def _link(selection: Selection, dimension: str, name: Any) -> str:
    if dimension == "group" and name == NO_GROUP:
        return ""
    return selection.query(**{FILTER_OF[dimension]: name})


def _top(selection: Selection, dimension: str) -> list[Line]:
    rows = grouped(selection, (dimension,), limit=TOP)
    return _lines(selection, dimension, {row.key[dimension]: row.figures for row in rows})


def _all_days(selection: Selection) -> list[dt.date]:
    return [selection.start + dt.timedelta(days=offset) for offset in range(selection.days)]


def chart(selection: Selection, rows: list[Row] | None = None) -> dict[str, Any]:
    """Spend per day stacked by `selection.stack`, as Chart.js data: one dataset per series (the biggest
    SERIES, then "other"), amounts as exact plain decimal strings (the chart reads them as numbers); each
    series carries the filter that narrows to it, each day the query of its own view. `rows`: the
    selection's rows by day and stack, when the caller has them already."""
    days = _all_days(selection)
    stack = selection.stack
    rows = grouped(selection, ("day", stack)) if rows is None else rows
    by_series: dict[str, Decimal] = {}
    for row in rows:
        name = str(row.key[stack])
        by_series[name] = by_series.get(name, Decimal(0)) + row.figures.cost
    named = [name for name, _ in sorted(by_series.items(), key=lambda item: (-item[1], item[0]))[:SERIES]]
    index = {day: offset for offset, day in enumerate(days)}
    values = {name: [Decimal(0)] * len(days) for name in [*named, OTHER]}
    for row in rows:
        name = str(row.key[stack])
        values[name if name in named else OTHER][index[row.key["day"]]] += row.figures.cost
    series = [
        {
            "label": name,
            "data": [plain_usd(value) for value in values[name]],
            "filter": [FILTER_OF[stack], name] if _link(selection, stack, name) else None,
        }
        for name in named
    ]
    if any(values[OTHER]):
        series.append({"label": OTHER, "data": [plain_usd(value) for value in values[OTHER]], "filter": None})
    return {
        "labels": [day.isoformat() for day in days],
        "dayQueries": [selection.day_query(day) for day in days],
        "series": series,
    }


def _lines(selection: Selection, dimension: str, sums: dict[Any, Figures]) -> list[Line]:
    ranked = sorted(sums.items(), key=lambda item: (-item[1].cost, str(item[0])))[:TOP]
    peak = ranked[0][1].cost if ranked else Decimal(0)
    return [
        Line(str(name), figures, level(figures.cost, peak), _link(selection, dimension, name))
        for name, figures in ranked
    ]


def _sum_by(rows: list[Row], dimension: str) -> dict[Any, Figures]:
    sums: dict[Any, Figures] = {}
    for row in rows:
        name = row.key[dimension]
        sums[name] = sums.get(name, Figures()) + row.figures
    return sums


def explore(selection: Selection) -> Explorer:
    """Everything the explorer shows for a selection. The rows by day and stacked dimension also give that
    dimension's top list and, unless they are groups (a person in two groups is in two rows), the days and
    the total, saving up to three scans of the rollups."""
    days = _all_days(selection)
    stack = selection.stack
    rows = grouped(selection, ("day", stack))
    if stack == "group":
        per_day = {row.key["day"]: row.figures for row in grouped(selection, ("day",))}
        total = totals(selection)
    else:
        per_day = _sum_by(rows, "day")
        total = sum(per_day.values(), start=Figures())
    dimensions = ("person", "model", "group", "source")
    tops = {d: _lines(selection, d, _sum_by(rows, d)) if d == stack else _top(selection, d) for d in dimensions}
    return Explorer(
        selection=selection,
        total=total,
        previous=totals(selection.previous()),
        days=[
            Day(
                day=day,
                cost=per_day.get(day, Figures()).cost,
                requests=per_day.get(day, Figures()).requests,
                link=selection.day_query(day),
            )
            for day in days
        ],
        chart=chart(selection, rows),
        tops=tops,
    )

"""CSV downloads of the explorer, streamed row by row: the page's own figures (`explorer_rows`) and the
rollup rows behind them, one per day, person, model and source (`detail_rows`, read with a server-side
cursor, so 90 days of 500 people take constant memory). Cells a spreadsheet would read as a formula are
made text; amounts are exact plain decimals."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from console.explorer import Explorer
from console.filters import Selection
from console.spend import stream
from orweb.money import plain_usd

SUMMARY_HEADER = ["section", "day", "name", "usd", "requests", "errors"]
DETAIL_HEADER = ["day", "person", "model", "source", "requests", "errors", "prompt_tokens", "completion_tokens", "usd"]
SECTIONS = {"person": "top_people", "model": "top_models", "group": "top_groups", "source": "top_sources"}


def cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ tab or CR would start a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _selection_rows(selection: Selection) -> Iterator[list[str]]:
    yield ["range", "", f"{selection.start}..{selection.end}", "", "", ""]
    for name, value in selection.active_filters:
        yield ["filter", "", cell(f"{name}={value}"), "", "", ""]


def explorer_rows(explorer: Explorer) -> Iterator[list[str]]:
    """What the explorer page shows, section by section: totals, each day (and each stacked series of
    it, as on the chart), then the top lists."""
    yield SUMMARY_HEADER
    yield from _selection_rows(explorer.selection)
    total, previous = explorer.total, explorer.previous
    yield ["total", "", "", plain_usd(total.cost), str(total.requests), str(total.errors)]
    yield ["previous_range", "", "", plain_usd(previous.cost), str(previous.requests), str(previous.errors)]
    for day in explorer.days:
        yield ["day", day.day.isoformat(), "", plain_usd(day.cost), str(day.requests), ""]
    for series in explorer.chart["series"]:
        for label, amount in zip(explorer.chart["labels"], series["data"], strict=True):
            yield [f"day_by_{explorer.selection.stack}", label, cell(series["label"]), amount, "", ""]
    for dimension, section in SECTIONS.items():
        for line in explorer.tops[dimension]:
            figures = line.figures
            yield [section, "", cell(line.name), plain_usd(figures.cost), str(figures.requests), str(figures.errors)]


def detail_rows(selection: Selection) -> Iterator[list[str]]:
    """Every rollup row (day, person, model, source) of the selection: their sums are the page's figures."""
    yield DETAIL_HEADER
    for row in stream(selection, ("day", "person", "model", "source")):
        key, figures = row.key, row.figures
        yield [
            key["day"].isoformat(),
            cell(key["person"]),
            cell(key["model"]),
            key["source"],
            str(figures.requests),
            str(figures.errors),
            str(figures.prompt_tokens),
            str(figures.completion_tokens),
            plain_usd(figures.cost),
        ]


class Echo:
    """A file-like object whose write returns the line: csv.writer then yields text for streaming."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(Echo())
    return (writer.writerow(row) for row in rows)

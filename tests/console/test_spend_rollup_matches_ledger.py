"""The explorer's sums, read from the daily rollups (filtered by API key, from the key's), equal the raw
ledger's sums computed row by row here, for random ranges and filters: a seeded random loop beside the
hypothesis property test (test_rollups_property), the same cases on every run."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from freezegun import freeze_time

from billing.ledger import ERROR_STATUSES, Outcome, settle
from billing.models import LedgerEntry
from console.explorer import TOP, explore
from console.filters import Selection
from console.spend import NO_GROUP, grouped, totals
from gateway.keys import create_key
from tests.helpers.personas import person

pytestmark = pytest.mark.django_db

SEED = 20260318
FIRST = dt.date(2026, 1, 1)
DAYS = 60
MODELS = ["a/one", "a/two", "b/three", "c/four"]
SOURCES = ["chat", "api", "batch", "system"]
STATUSES = ["ok", "ok", "ok", "error", "cancelled", "incomplete"]
CASES = 60


@pytest.fixture
def world():
    """Six people (one in two groups, one in none), their keys, and 400 calls over 60 days."""
    rng = random.Random(SEED)
    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    people = [person(f"p{n}", group=red if n < 3 else blue if n < 5 else None) for n in range(6)]
    people[2].groups.add(blue)
    keys = [create_key(someone, f"k{someone.pk}")[0] for someone in people[:4]]
    start = dt.datetime.combine(FIRST, dt.time(), tzinfo=dt.UTC)
    with freeze_time(start) as clock:
        for _ in range(400):
            someone = rng.choice(people)
            own_keys = [key.pk for key in keys if key.user_id == someone.pk]
            clock.move_to(start + dt.timedelta(seconds=rng.randrange(DAYS * 86400)))
            served = rng.choice(MODELS)
            settle(
                Outcome(
                    user_id=someone.pk,
                    source=rng.choice(SOURCES),
                    requested_model=served if rng.random() < 0.8 else "orweb/auto",
                    served_model=served if rng.random() < 0.9 else "",
                    status=rng.choice(STATUSES),
                    cost=Decimal(rng.randrange(0, 10**7)) / Decimal(10**9),
                    cost_source=LedgerEntry.CostSource.REPORTED,
                    api_key_id=rng.choice([None, *own_keys]),
                    prompt_tokens=rng.randrange(5000),
                    completion_tokens=rng.randrange(5000),
                )
            )
    return {"people": people, "groups": [red, blue], "keys": keys}


def _selection(rng: random.Random, world) -> Selection:
    start = FIRST + dt.timedelta(days=rng.randrange(-5, DAYS))
    end = start + dt.timedelta(days=rng.randrange(0, 40))
    maybe = lambda choices, empty: rng.choice(choices) if rng.random() < 0.3 else empty  # noqa: E731
    filters = {
        "person": maybe(world["people"], None),
        "group": maybe(world["groups"], None),
        "model": maybe(MODELS, ""),
        "source": maybe(SOURCES, ""),
        "key": maybe(world["keys"], None),
    }
    return Selection(start=start, end=end, preset="custom", **filters)


def _ledger() -> list[dict]:
    """Every ledger row with its day, model and its person's groups, read row by row."""
    rows = []
    for entry in LedgerEntry.objects.select_related("user").prefetch_related("user__groups"):
        groups = sorted(group.name for group in entry.user.groups.all()) or [NO_GROUP]
        rows.append(
            {
                "day": entry.created.astimezone(dt.UTC).date(),
                "person": entry.user.username,
                "model": entry.served_model or entry.requested_model,
                "source": entry.source,
                "groups": groups,
                "key": entry.api_key_id,
                "cost": entry.cost,
                "error": entry.status in ERROR_STATUSES,
                "tokens": (entry.prompt_tokens, entry.completion_tokens),
            }
        )
    return rows


def _raw(ledger: list[dict], selection: Selection) -> list[dict]:
    """The rows the selection covers, filtered in Python."""
    rows = []
    for row in ledger:
        groups = row["groups"]
        if not selection.start <= row["day"] <= selection.end:
            continue
        if selection.person and row["person"] != selection.person.username:
            continue
        if selection.group and selection.group.name not in groups:
            continue
        if (selection.model and row["model"] != selection.model) or (
            selection.source and row["source"] != selection.source
        ):
            continue
        if selection.key and row["key"] != selection.key.pk:
            continue
        rows.append(row)
    return rows


def _by(rows: list[dict], dimension: str) -> dict:
    sums: dict = defaultdict(Decimal)
    for row in rows:
        for name in row["groups"] if dimension == "group" else [row[dimension]]:
            sums[name] += row["cost"]
    return dict(sums)


def test_rollup_sums_equal_raw_ledger_sums_for_random_selections(world):
    rng = random.Random(SEED + 1)
    ledger = _ledger()
    for case in range(CASES):
        selection = _selection(rng, world)
        rows = _raw(ledger, selection)
        figures = totals(selection)
        context = f"case {case}: {selection}"
        assert figures.cost == sum((row["cost"] for row in rows), Decimal(0)), context
        assert figures.requests == len(rows), context
        assert figures.errors == sum(row["error"] for row in rows), context
        assert figures.prompt_tokens == sum(row["tokens"][0] for row in rows), context
        assert figures.completion_tokens == sum(row["tokens"][1] for row in rows), context
        for dimension in ("day", "person", "model", "source", "group"):
            got = {row.key[dimension]: row.figures.cost for row in grouped(selection, (dimension,))}
            assert got == _by(rows, dimension), f"{context}, by {dimension}"
        page = explore(replace(selection, stack=rng.choice(["model", "group", "source"])))
        assert page.total == figures, context
        assert {day.day: day.cost for day in page.days if day.cost} == {
            day: cost for day, cost in _by(rows, "day").items() if cost
        }, context
        for dimension in ("person", "model", "source", "group"):
            expected = sorted(_by(rows, dimension).items(), key=lambda item: (-item[1], str(item[0])))[:TOP]
            got = [(line.name, line.figures.cost) for line in page.tops[dimension]]
            assert got == [(str(name), cost) for name, cost in expected], f"{context}, top {dimension}"


def test_the_loop_covers_both_paths_and_empty_and_busy_selections(world):
    rng = random.Random(SEED + 1)
    selections = [_selection(rng, world) for _ in range(CASES)]
    ledger = _ledger()
    sizes = [len(_raw(ledger, selection)) for selection in selections]
    assert any(selection.key for selection in selections) and any(not selection.key for selection in selections)
    assert min(sizes) == 0 and max(sizes) > 50

"""Property: the rollups settling writes (per day, person, model and source; per day, model and source; per
day and person; per day, person and source; per day, API key, model and source) and every console sum read
from whichever of them `table_for` picks equal the raw ledger's sums, for any range and filters hypothesis
can think of, also after reconciliation has corrected estimated costs and token counts up or down."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import defaultdict
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db.models import Sum
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.ledger import ERROR_STATUSES, Outcome, settle
from billing.models import (
    DailyKeyUsage,
    DailyModelUsage,
    DailyPersonSourceUsage,
    DailyPersonUsage,
    DailyUsage,
    LedgerEntry,
)
from billing.reconcile import apply_generation
from console.filters import Selection
from console.spend import (
    KEY_ROLLUP,
    MODEL_ROLLUP,
    NO_GROUP,
    PERSON_ROLLUP,
    ROLLUP,
    SOURCE_ROLLUP,
    grouped,
    table_for,
    totals,
)
from gateway.keys import create_key
from tests.helpers.personas import person

pytestmark = pytest.mark.django_db

FIRST = dt.date(2026, 5, 1)
DAYS = 20
MODELS = ["a/one", "b/two", "c/three"]
SOURCES = ["chat", "api", "batch"]
SUMS = ("cost", "requests", "errors", "prompt_tokens", "completion_tokens")
EXAMPLES = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)


@pytest.fixture
def world():
    """Five people (one in two groups, one in none) with keys, 200 calls over 20 days, a third of them
    estimated and then reconciled from OpenRouter's billed cost (up or down)."""
    rng = random.Random(11)
    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    people = [person(f"q{n}", group=red if n < 2 else blue if n < 4 else None) for n in range(5)]
    people[1].groups.add(blue)
    keys = [create_key(someone, "k")[0] for someone in people[:3]]
    start = dt.datetime.combine(FIRST, dt.time(), tzinfo=dt.UTC)
    estimated = []
    with freeze_time(start) as clock:
        for n in range(200):
            someone = rng.choice(people)
            clock.move_to(start + dt.timedelta(seconds=rng.randrange(DAYS * 86400)))
            guessed = n % 3 == 0
            entry = settle(
                Outcome(
                    user_id=someone.pk,
                    source=rng.choice(SOURCES),
                    requested_model=rng.choice(MODELS),
                    served_model=rng.choice([*MODELS, ""]),
                    status=rng.choice(["ok", "ok", "error", "incomplete", "cancelled"]),
                    cost=Decimal(rng.randrange(0, 10**6)) / Decimal(10**8),
                    cost_source=LedgerEntry.CostSource.ESTIMATED if guessed else LedgerEntry.CostSource.REPORTED,
                    generation_id=f"gen-{n}",
                    api_key_id=rng.choice([None, *(key.pk for key in keys if key.user_id == someone.pk)]),
                    prompt_tokens=rng.randrange(3000),
                    completion_tokens=rng.randrange(3000),
                )
            )
            if guessed:
                estimated.append(entry)
    for entry in estimated:
        billed = {
            "total_cost": str(Decimal(rng.randrange(0, 10**6)) / Decimal(10**8)),
            "tokens_prompt": rng.randrange(1, 3000),
            "tokens_completion": rng.randrange(1, 3000),
        }
        assert apply_generation(entry.pk, billed)
    return {"people": people, "groups": [red, blue], "keys": keys}


def _ledger_rows(selection: Selection) -> list[dict]:
    rows = []
    entries = LedgerEntry.objects.select_related("user").prefetch_related("user__groups")
    for entry in entries:
        row = {
            "day": entry.created.astimezone(dt.UTC).date(),
            "person": entry.user.username,
            "groups": sorted(group.name for group in entry.user.groups.all()) or [NO_GROUP],
            "model": entry.served_model or entry.requested_model,
            "source": entry.source,
            "key": entry.api_key_id,
            "cost": entry.cost,
            "requests": 1,
            "errors": int(entry.status in ERROR_STATUSES),
            "prompt_tokens": entry.prompt_tokens,
            "completion_tokens": entry.completion_tokens,
        }
        wanted = (
            selection.start <= row["day"] <= selection.end
            and (not selection.person or row["person"] == selection.person.username)
            and (not selection.group or selection.group.name in row["groups"])
            and (not selection.model or row["model"] == selection.model)
            and (not selection.source or row["source"] == selection.source)
            and (not selection.key or row["key"] == selection.key.pk)
        )
        if wanted:
            rows.append(row)
    return rows


def _sum(rows: list[dict], by: tuple[str, ...] = ()) -> dict:
    """The rows' sums per tuple of values of the `by` dimensions (a person in two groups counts in both)."""
    sums: dict = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    for row in rows:
        for name in itertools.product(
            *(row["groups"] if dimension == "group" else [row[dimension]] for dimension in by)
        ):
            for field in SUMS:
                sums[name][field] += row[field]
    return dict(sums)


GROUPINGS = [("day",), ("person",), ("model",), ("source",), ("group",), ("day", "model"), ("day", "group")]
GROUPINGS += [("day", "source"), ("person", "source")]


def selections():
    """Any range from before the first call to after the last, any mix of filters."""

    @st.composite
    def build(draw, world):
        start = FIRST + dt.timedelta(days=draw(st.integers(-3, DAYS + 1)))
        end = start + dt.timedelta(days=draw(st.integers(0, DAYS)))
        pick = lambda options: draw(st.one_of(st.none(), st.sampled_from(options)))  # noqa: E731
        return Selection(
            start=start,
            end=end,
            preset="custom",
            person=pick(world["people"]),
            group=pick(world["groups"]),
            model=pick(MODELS) or "",
            source=pick(SOURCES) or "",
            key=pick(world["keys"]) if draw(st.booleans()) else None,
        )

    return build


@given(data=st.data())
@EXAMPLES
def test_console_sums_equal_the_ledgers_from_whichever_table_answers(world, data):
    selection = data.draw(selections()(world))
    rows = _ledger_rows(selection)

    figures = totals(selection)
    expected = _sum(rows).get((), dict.fromkeys(SUMS, 0))
    assert {field: getattr(figures, field) for field in SUMS} == expected
    for by in GROUPINGS:
        got = {
            tuple(row.key[name] for name in by): {field: getattr(row.figures, field) for field in SUMS}
            for row in grouped(selection, by)
        }
        assert got == _sum(rows, by), (by, table_for(selection, by).name)


@given(
    first=st.integers(-2, DAYS),
    length=st.integers(0, DAYS),
    person_index=st.one_of(st.none(), st.integers(0, 4)),
    key_index=st.one_of(st.none(), st.integers(0, 2)),
    model=st.one_of(st.none(), st.sampled_from(MODELS)),
    source=st.one_of(st.none(), st.sampled_from(SOURCES)),
)
@EXAMPLES
def test_each_rollup_table_sums_to_the_ledger(world, first, length, person_index, key_index, model, source):
    start = FIRST + dt.timedelta(days=first)
    selection = Selection(start=start, end=start + dt.timedelta(days=length), preset="custom")
    someone = None if person_index is None else world["people"][person_index]
    key = None if key_index is None else world["keys"][key_index]
    rows = [
        row
        for row in _ledger_rows(selection)
        if (someone is None or row["person"] == someone.username)
        and (model is None or row["model"] == model)
        and (source is None or row["source"] == source)
    ]

    def summed(queryset):
        got = queryset.filter(day__range=(selection.start, selection.end)).aggregate(*(Sum(f) for f in SUMS))
        return {field: got[f"{field}__sum"] or 0 for field in SUMS}

    narrow = {
        **({"user": someone} if someone else {}),
        **({"model": model} if model else {}),
        **({"source": source} if source else {}),
    }
    expected = _sum(rows).get((), dict.fromkeys(SUMS, 0))
    with_key = [row for row in rows if row["key"] is not None and (key is None or row["key"] == key.pk)]
    by_key = {"api_key_id": key.pk} if key else {}
    assert summed(DailyUsage.objects.filter(**narrow)) == expected
    assert summed(DailyKeyUsage.objects.filter(**narrow, **by_key)) == _sum(with_key).get((), dict.fromkeys(SUMS, 0))
    if someone is None:
        assert summed(DailyModelUsage.objects.filter(**narrow)) == expected
    if model is None:
        assert summed(DailyPersonSourceUsage.objects.filter(**narrow)) == expected
    if model is None and source is None:
        assert summed(DailyPersonUsage.objects.filter(**narrow)) == expected


def test_each_selection_reads_the_smallest_table_that_answers_it(world):
    red = world["groups"][0]
    someone = world["people"][0]
    plain = Selection(start=FIRST, end=FIRST, preset="custom")
    key = world["keys"][0]
    assert table_for(plain, ("day",)) is MODEL_ROLLUP
    assert table_for(Selection(start=FIRST, end=FIRST, model="a/one"), ("source",)) is MODEL_ROLLUP
    assert table_for(plain, ("person",)) is PERSON_ROLLUP
    assert table_for(Selection(start=FIRST, end=FIRST, group=red), ("day",)) is PERSON_ROLLUP
    assert table_for(Selection(start=FIRST, end=FIRST, source="chat"), ("group",)) is SOURCE_ROLLUP
    assert table_for(Selection(start=FIRST, end=FIRST, person=someone), ("day", "source")) is SOURCE_ROLLUP
    assert table_for(Selection(start=FIRST, end=FIRST, person=someone), ("model",)) is ROLLUP
    assert table_for(Selection(start=FIRST, end=FIRST, group=red, source="api"), ("model",)) is ROLLUP
    assert table_for(Selection(start=FIRST, end=FIRST, key=key), ("day",)) is KEY_ROLLUP
    assert table_for(Selection(start=FIRST, end=FIRST, key=key, source="api"), ("group",)) is KEY_ROLLUP

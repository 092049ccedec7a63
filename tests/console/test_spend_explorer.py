"""The spend explorer: the range's total against the range before, spend per day stacked as the admin
picks, top lists whose every figure links to its filtered view, filters (an API key's from its own rollup),
presets, form errors for bad input, and the CSVs of exactly what is shown."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from freezegun import freeze_time

from billing.ledger import Outcome, settle
from billing.models import LedgerEntry
from gateway.keys import create_key

pytestmark = pytest.mark.django_db

EXPLORER = reverse("console:explorer")
CSV = reverse("console:explorer_csv")
ROWS_CSV = reverse("console:explorer_rows_csv")
TODAY = dt.date(2026, 3, 18)


def spend(user, cost, *, day=TODAY, model="m/a", source="chat", key=None, status="ok", hour=12):
    """One settled call on `day`, the way the gateway records it (ledger row and rollup together)."""
    with freeze_time(dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)):
        return settle(
            Outcome(
                user_id=user.pk,
                source=source,
                requested_model=model,
                served_model=model,
                status=status,
                cost=Decimal(cost),
                cost_source=LedgerEntry.CostSource.REPORTED,
                api_key_id=key.pk if key else None,
                prompt_tokens=10,
                completion_tokens=20,
            )
        )


@pytest.fixture(autouse=True)
def _today():
    with freeze_time("2026-03-18 15:00"):
        yield


def explore(client, **params):
    response = client.get(EXPLORER, params)
    assert response.status_code == 200, response.content.decode()[:2000]
    return response.context["explorer"]


def test_it_compares_the_range_with_the_one_before(owner, staff_client):
    spend(owner, "3.00", day=TODAY)
    spend(owner, "1.00", day=TODAY - dt.timedelta(days=6))
    spend(owner, "2.00", day=TODAY - dt.timedelta(days=7))  # the previous 7 days
    spend(owner, "9.00", day=TODAY - dt.timedelta(days=14))  # before that: in neither
    explorer = explore(staff_client, preset="7d")
    assert (explorer.total.cost, explorer.previous.cost, explorer.change_percent) == (
        Decimal("4"),
        Decimal("2"),
        Decimal("100.0"),
    )
    page = staff_client.get(EXPLORER, {"preset": "7d"}).content.decode()
    assert 'data-testid="change">+100.0%' in page
    assert "start=2026-03-05&amp;end=2026-03-11" in page  # the previous range is a link to itself


@pytest.mark.parametrize(
    ("preset", "start", "end"),
    [
        ("today", "2026-03-18", "2026-03-18"),
        ("7d", "2026-03-12", "2026-03-18"),
        ("30d", "2026-02-17", "2026-03-18"),
        ("month", "2026-03-01", "2026-03-18"),
        ("last_month", "2026-02-01", "2026-02-28"),
    ],
)
def test_presets_pick_their_days(preset, start, end, staff_client):
    selection = explore(staff_client, preset=preset).selection
    assert (selection.start.isoformat(), selection.end.isoformat()) == (start, end)


def test_a_custom_range_counts_its_first_and_last_day(owner, staff_client):
    for offset, cost in enumerate(["1", "2", "4", "8"]):
        spend(owner, cost, day=dt.date(2026, 3, 1) + dt.timedelta(days=offset))
    explorer = explore(staff_client, start="2026-03-02", end="2026-03-03")
    assert explorer.total.cost == Decimal("6")
    assert [(day.day.day, day.cost) for day in explorer.days] == [(2, Decimal(2)), (3, Decimal(4))]


def test_top_lists_rank_and_link_to_their_filtered_view(owner, teammate, outsider, staff_client):
    spend(owner, "5", model="m/big")
    spend(teammate, "1", model="m/small", source="api")
    spend(outsider, "0.0004", model="m/small", source="batch")
    explorer = explore(staff_client, preset="today")
    people = [(line.name, line.figures.cost) for line in explorer.tops["person"]]
    assert people == [(owner.username, 5), (teammate.username, 1), (outsider.username, Decimal("0.0004"))]
    assert [line.name for line in explorer.tops["model"]] == ["m/big", "m/small"]
    assert [line.name for line in explorer.tops["group"]] == ["Team", "Elsewhere"]
    assert [line.name for line in explorer.tops["source"]] == ["chat", "api", "batch"]
    assert explorer.tops["model"][1].link == "?preset=today&model=m%2Fsmall&stack=model"
    narrowed = explore(staff_client, preset="today", model="m/small")
    assert narrowed.total.cost == Decimal("1.0004")
    page = staff_client.get(EXPLORER, {"preset": "today"}).content.decode()
    assert f'href="{EXPLORER}?preset=today&amp;person={owner.username}&amp;stack=model">$5.00' in page
    assert "$0.0004" in page  # small amounts keep their digits
    assert reverse("console:person", args=[owner.username]) in page


def test_filters_narrow_every_figure(owner, teammate, outsider, staff_client):
    spend(owner, "1", model="m/a", source="chat")
    spend(owner, "2", model="m/b", source="api")
    spend(teammate, "4", model="m/a", source="chat")
    spend(outsider, "8", model="m/a", source="chat")
    assert explore(staff_client, preset="today", person=owner.username).total.cost == 3
    assert explore(staff_client, preset="today", group="Team").total.cost == 7
    assert explore(staff_client, preset="today", group="Team", model="m/a").total.cost == 5
    assert explore(staff_client, preset="today", source="api").total.cost == 2
    narrowed = explore(staff_client, preset="today", group="Team", source="chat")
    assert [(line.name, line.figures.cost) for line in narrowed.tops["person"]] == [
        (teammate.username, Decimal(4)),
        (owner.username, Decimal(1)),
    ]


def test_an_api_keys_spend_comes_from_the_ledger(owner, staff_client):
    key, _ = create_key(owner, "ci")
    other, _ = create_key(owner, "laptop")
    spend(owner, "1.5", key=key, source="api")
    spend(owner, "0.25", key=key, source="api", status="error", day=TODAY - dt.timedelta(days=1))
    spend(owner, "7", key=other, source="api")
    spend(owner, "9", source="chat")
    explorer = explore(staff_client, preset="7d", key=key.pk)
    assert (explorer.total.cost, explorer.total.requests, explorer.total.errors) == (Decimal("1.75"), 2, 1)
    assert [(day.day, day.cost) for day in explorer.days[-2:]] == [
        (TODAY - dt.timedelta(days=1), Decimal("0.25")),
        (TODAY, Decimal("1.5")),
    ]
    assert [line.name for line in explorer.tops["person"]] == [owner.username]


@pytest.mark.parametrize("stack", ["model", "group", "source"])
def test_the_chart_is_stacked_as_picked_and_clicks_through(stack, owner, outsider, staff_client):
    spend(owner, "1", model="m/a", source="chat", day=TODAY - dt.timedelta(days=1))
    spend(outsider, "2", model="m/b", source="api")
    response = staff_client.get(EXPLORER, {"preset": "7d", "stack": stack})
    chart = json.loads(_json_script(response, "explorer-chart"))
    assert chart == response.context["explorer"].chart
    names = {"model": ["m/b", "m/a"], "group": ["Elsewhere", "Team"], "source": ["api", "chat"]}[stack]
    assert [series["label"] for series in chart["series"]] == names
    assert chart["series"][0]["data"][-1] == "2" and chart["series"][1]["data"][-2] == "1"
    assert chart["series"][0]["filter"] == [stack, names[0]]
    assert chart["dayQueries"][-1] == f"?preset=custom&start=2026-03-18&end=2026-03-18&stack={stack}"
    assert len(chart["labels"]) == 7


def _json_script(response, element_id: str) -> str:
    """The JSON the page hands its chart script, as the browser reads it."""
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    return found.group(1)


def test_more_series_than_fit_are_shown_as_other(owner, staff_client):
    for number in range(9):
        spend(owner, str(number + 1), model=f"m/{number}")
    chart = explore(staff_client, preset="today").chart
    assert [series["label"] for series in chart["series"]] == [f"m/{n}" for n in range(8, 1, -1)] + ["other"]
    assert chart["series"][-1]["data"] == ["3"] and chart["series"][-1]["filter"] is None


def test_people_in_no_group_are_their_own_line_without_a_link(staff, staff_client):
    spend(staff, "1")
    [line] = explore(staff_client, preset="today").tops["group"]
    assert (line.name, line.link) == ("(no group)", "")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-03-10", "end": "2026-03-01"}, "The range is reversed"),
        ({"start": "2026-02-30", "end": "2026-03-01"}, "Enter a valid date"),
        ({"start": "yesterday", "end": "2026-03-01"}, "Enter a valid date"),
        ({"start": "2021-01-01", "end": "2026-03-01"}, "Pick at most 731 days"),
        ({"start": "1970-01-01", "end": "1970-01-02"}, "Pick days between"),
        ({"start": "2026-03-01", "end": "2027-03-01"}, "Pick days between"),
        ({"preset": "custom", "start": "2026-03-01"}, "needs both a first and a last day"),
        ({"preset": "fortnight"}, "Select a valid choice"),
        ({"person": "nobody"}, "Nobody is called “nobody”"),
        ({"group": "Ghosts"}, "There is no group “Ghosts”"),
        ({"model": "m/never"}, "No model “m/never”"),
        ({"key": "999999"}, "There is no API key #999999"),
        ({"key": "-1"}, "greater than or equal to 1"),
        ({"stack": "weather"}, "Select a valid choice"),
    ],
)
def test_bad_input_is_a_clear_form_error(params, message, owner, staff_client):
    spend(owner, "1")
    for url in (EXPLORER, CSV, ROWS_CSV):
        response = staff_client.get(url, params)
        assert response.status_code == 400
        page = response.content.decode()
        assert 'data-testid="form-errors"' in page and message in page
        assert 'data-testid="total"' not in page


def _csv(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_holds_exactly_what_the_page_shows(owner, teammate, staff_client):
    spend(owner, "0.0000001", model="m/a")
    spend(teammate, "2.5", model="m/b", source="api", day=TODAY - dt.timedelta(days=1))
    params = {"preset": "7d", "stack": "source"}
    explorer = explore(staff_client, **params)
    rows = _csv(staff_client.get(CSV, params))
    assert rows[0] == ["section", "day", "name", "usd", "requests", "errors"]
    assert ["total", "", "", "2.5000001", "2", "0"] in rows
    assert ["day", "2026-03-18", "", "0.0000001", "1", ""] in rows
    assert ["day_by_source", "2026-03-17", "api", "2.5", "", ""] in rows
    assert [row[2] for row in rows if row[0] == "top_people"] == [line.name for line in explorer.tops["person"]]
    assert len([row for row in rows if row[0] == "day"]) == len(explorer.days) == 7


def test_the_rows_csv_sums_to_the_total_and_is_formula_safe(owner, staff_client):
    hostile = Group.objects.create(name="=HYPERLINK(1)")
    owner.groups.add(hostile)
    spend(owner, "1.25", model="=cmd|' /C calc'!A0")
    spend(owner, "0.75", model="m/a", source="api")
    params = {"preset": "today", "person": owner.username}
    rows = _csv(staff_client.get(ROWS_CSV, params))
    assert rows[0][:4] == ["day", "person", "model", "source"]
    assert sum(Decimal(row[-1]) for row in rows[1:]) == explore(staff_client, **params).total.cost
    assert ["2026-03-18", owner.username, "'=cmd|' /C calc'!A0", "chat", "1", "0", "10", "20", "1.25"] in rows
    page_rows = _csv(staff_client.get(CSV, {"preset": "today", "stack": "group"}))
    assert ["day_by_group", "2026-03-18", "'=HYPERLINK(1)", "2", "", ""] in page_rows

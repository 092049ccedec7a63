"""The console's models page: what each model cost the team in the range, a model's price history as a
chart, the price changes of the last 30 days with the price they replaced, and the models about to retire
that people still use."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from freezegun import freeze_time

from catalog.models import CatalogModel, PriceChange
from tests.billing.rollups import add_usage

pytestmark = pytest.mark.django_db

MODELS = reverse("console:models")
TODAY = dt.date(2026, 3, 18)
PER_TOKEN = Decimal("0.000001")  # $1 per million tokens


@pytest.fixture(autouse=True)
def _today():
    with freeze_time("2026-03-18 12:00"):
        yield


def model(model_id, prompt="1", completion="2", **fields):
    return CatalogModel.objects.create(
        id=model_id,
        name=model_id,
        prompt_price=Decimal(prompt) * PER_TOKEN,
        completion_price=Decimal(completion) * PER_TOKEN,
        **fields,
    )


def price(catalog_model, when, prompt, completion):
    PriceChange.objects.create(
        model=catalog_model,
        prompt_price=Decimal(prompt) * PER_TOKEN,
        completion_price=Decimal(completion) * PER_TOKEN,
        effective_from=dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC),
    )


def used(user, model_id, cost, days_ago=0):
    add_usage(TODAY - dt.timedelta(days=days_ago), user, model_id, cost=cost)


def test_it_shows_what_each_model_cost_in_the_range(owner, teammate, staff_client):
    model("m/a")
    used(owner, "m/a", Decimal("3"))
    used(teammate, "m/a", Decimal("1"), days_ago=2)
    used(owner, "m/b", Decimal("0.0004"))
    used(owner, "m/old", Decimal("50"), days_ago=45)
    response = staff_client.get(MODELS, {"preset": "7d"})
    lines = [(line.model, line.cost, line.requests) for line in response.context["costs"]]
    assert lines == [("m/a", Decimal(4), 2), ("m/b", Decimal("0.0004"), 1)]
    html = response.content.decode()
    assert f'href="{reverse("console:explorer")}?preset=7d&amp;model=m%2Fa&amp;stack=model">$4.00' in html
    assert "$0.0004" in html


def test_it_charts_the_price_history_of_the_picked_or_costliest_model(owner, staff_client):
    gpt = model("m/a", prompt="2", completion="8")
    price(gpt, "2026-01-01T00:00", "3", "12")
    price(gpt, "2026-03-01T00:00", "2", "8")
    model("m/b")
    used(owner, "m/a", Decimal("1"))
    response = staff_client.get(MODELS)
    assert response.context["shown"] == "m/a"
    found = re.search(r'<script id="price-history" type="application/json">(.*?)</script>', response.content.decode())
    history = json.loads(found.group(1))
    assert history["labels"] == ["2026-01-01", "2026-03-01", "2026-03-18"]
    assert history["series"][0]["data"] == ["3", "2", "2"]
    assert history["series"][1]["data"] == ["12", "8", "8"]
    assert staff_client.get(MODELS, {"model": "m/b"}).context["shown"] == "m/b"


def test_price_changes_of_the_last_30_days_show_what_they_replaced(staff_client):
    cheap = model("m/a")
    price(cheap, "2026-01-01T00:00", "1", "2")
    price(cheap, "2026-03-10T00:00", "1.5", "2")
    price(model("m/b"), "2026-01-02T00:00", "4", "4")  # older than 30 days
    changes = staff_client.get(MODELS).context["changes"]
    assert [(c["model"], c["was_prompt"], c["prompt"], c["up"]) for c in changes] == [
        ("m/a", Decimal(1), Decimal("1.5"), True)
    ]


def test_models_about_to_retire_are_listed_when_someone_still_uses_them(owner, teammate, staff_client):
    model("m/leaving", expiration_date=TODAY + dt.timedelta(days=20))
    model("m/gone", is_available=False)
    model("m/later", expiration_date=TODAY + dt.timedelta(days=200))
    model("m/unused", expiration_date=TODAY + dt.timedelta(days=5))
    used(owner, "m/leaving", Decimal("1"), days_ago=3)
    used(teammate, "m/leaving", Decimal("2"))
    used(owner, "m/gone", Decimal("1"), days_ago=10)
    used(owner, "m/later", Decimal("1"))
    used(owner, "m/unused", Decimal("1"), days_ago=60)  # not in the last 30 days
    response = staff_client.get(MODELS)
    retiring = [(line.model.pk, line.people, line.cost) for line in response.context["retiring"]]
    assert retiring == [("m/leaving", 2, Decimal(3)), ("m/gone", 1, Decimal(1))]
    assert "no longer offered" in response.content.decode()


def test_an_unknown_model_or_bad_range_is_a_form_error(staff_client):
    response = staff_client.get(MODELS, {"model": "m/nothing"})
    assert response.status_code == 400 and "No model “m/nothing”" in response.content.decode()
    assert staff_client.get(MODELS, {"start": "2026-03-02", "end": "2026-03-01"}).status_code == 400

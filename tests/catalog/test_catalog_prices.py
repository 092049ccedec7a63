"""Which models can be called (`CatalogModel.objects.callable()`), and prices set by hand (catalog.admin_prices)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.admin_prices import set_admin_price
from catalog.models import CatalogModel, PriceChange
from catalog.sync import sync_catalog
from tests.helpers.catalog import model_entry

pytestmark = pytest.mark.django_db


def test_callable_models_are_the_available_ones_with_a_known_price():
    listing = [
        model_entry("a/ok"),
        model_entry("a/free", pricing={"prompt": "0", "completion": "0"}),
        model_entry("a/unknown", pricing={"prompt": "-1", "completion": "-1"}),
        model_entry("a/half", pricing={"prompt": "0.000001", "completion": "x"}),
    ]
    sync_catalog([*listing, model_entry("a/gone")])
    sync_catalog(listing)

    assert sorted(CatalogModel.objects.callable().values_list("pk", flat=True)) == ["a/free", "a/ok"]


def test_an_admin_price_makes_a_model_callable_and_is_recorded(staff):
    sync_catalog([model_entry("a/router", pricing={"prompt": "-1", "completion": "-1", "request": "0.001"})])

    model = set_admin_price("a/router", Decimal("2.50"), Decimal("10"), staff)

    assert (model.prompt_price, model.completion_price) == (Decimal("0.0000025"), Decimal("0.00001"))
    assert model.price_set_by_admin and CatalogModel.objects.callable().filter(pk="a/router").exists()
    change = PriceChange.objects.filter(model_id="a/router").latest()
    assert change.source == PriceChange.Source.ADMIN and change.changed_by == staff
    assert (change.prompt_price, change.request_price) == (Decimal("0.0000025"), Decimal("0.001"))


@pytest.mark.parametrize("bad", [Decimal("-1"), Decimal("NaN"), 2.5])
def test_an_admin_price_must_be_a_non_negative_decimal(bad):
    sync_catalog([model_entry("a/m")])

    with pytest.raises(ValueError, match="non-negative Decimal"):
        set_admin_price("a/m", bad, Decimal(1), None)

    assert not CatalogModel.objects.get(pk="a/m").price_set_by_admin
    assert PriceChange.objects.filter(model_id="a/m").count() == 1

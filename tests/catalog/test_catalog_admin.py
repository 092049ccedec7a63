"""The catalog's admin: read-only upstream data, prices set per million, the quality order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import CatalogModel, PriceChange, QualityRank
from catalog.sync import sync_catalog
from tests.helpers.catalog import model_entry

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/catalog/catalogmodel/openrouter/auto/change/"


@pytest.fixture(autouse=True)
def _two_models() -> None:
    """A priced model and one with unknown prices, the case admins set prices for."""
    sync_catalog(
        [
            model_entry("openai/gpt-4o"),
            model_entry("openrouter/auto", pricing={"prompt": "-1", "completion": "-1"}),
        ]
    )


def test_the_list_shows_prices_per_million_and_can_be_searched(superuser_client):
    html = superuser_client.get("/admin/catalog/catalogmodel/", {"q": "gpt"}).content.decode()

    assert "openai/gpt-4o" in html and "$2.50" in html and "$10.00" in html
    assert "openrouter/auto" not in html


def test_an_admin_sets_a_price_per_million_and_it_is_recorded(superuser_client, superuser):
    response = superuser_client.post(
        CHANGE_URL,
        {
            "prompt_per_million": "1.25",
            "completion_per_million": "5",
            "price_changes-TOTAL_FORMS": "1",
            "price_changes-INITIAL_FORMS": "1",
            "price_changes-MIN_NUM_FORMS": "0",
            "price_changes-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302
    model = CatalogModel.objects.get(pk="openrouter/auto")
    assert (model.prompt_price, model.completion_price) == (Decimal("0.00000125"), Decimal("0.000005"))
    assert model.price_set_by_admin
    change = PriceChange.objects.filter(model=model).latest()
    assert change.source == PriceChange.Source.ADMIN and change.changed_by == superuser


def test_setting_only_one_of_the_two_prices_is_refused(superuser_client):
    response = superuser_client.post(
        CHANGE_URL,
        {
            "prompt_per_million": "1.25",
            "price_changes-TOTAL_FORMS": "1",
            "price_changes-INITIAL_FORMS": "1",
            "price_changes-MIN_NUM_FORMS": "0",
            "price_changes-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 200 and "Set both prices, or neither." in response.content.decode()
    assert CatalogModel.objects.get(pk="openrouter/auto").prompt_price is None


def test_the_change_page_shows_the_price_history_read_only(superuser_client):
    html = superuser_client.get(CHANGE_URL).content.decode()

    assert "price unknown" in html and 'name="prompt_per_million"' in html
    assert 'name="name"' not in html


def test_models_come_only_from_the_sync_and_are_never_deleted(superuser_client):
    assert superuser_client.get("/admin/catalog/catalogmodel/add/").status_code == 403
    assert superuser_client.get("/admin/catalog/catalogmodel/openai/gpt-4o/delete/").status_code == 403


def test_an_admin_hands_a_price_back_to_the_sync(superuser_client):
    superuser_client.post(
        CHANGE_URL,
        {
            "prompt_per_million": "1",
            "completion_per_million": "1",
            "price_changes-TOTAL_FORMS": "1",
            "price_changes-INITIAL_FORMS": "1",
            "price_changes-MIN_NUM_FORMS": "0",
            "price_changes-MAX_NUM_FORMS": "1000",
        },
    )

    superuser_client.post(
        "/admin/catalog/catalogmodel/",
        {
            "action": "use_upstream_price",
            "_selected_action": ["openrouter/auto"],
        },
    )

    assert not CatalogModel.objects.get(pk="openrouter/auto").price_set_by_admin


def test_quality_ranks_are_edited_in_the_list(superuser_client):
    first = QualityRank.objects.create(model_id="openai/gpt-4o", rank=1)
    second = QualityRank.objects.create(model_id="openrouter/auto", rank=2)

    response = superuser_client.post(
        "/admin/catalog/qualityrank/",
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(first.pk),
            "form-0-rank": "2",
            "form-1-id": str(second.pk),
            "form-1-rank": "1",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    assert list(QualityRank.objects.values_list("model_id", flat=True)) == [
        "openrouter/auto",
        "openai/gpt-4o",
    ]

"""catalog.sync.sync_catalog: the database side of a sync, fed entries directly."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from catalog.admin_prices import clear_admin_price, set_admin_price
from catalog.models import CatalogModel, PriceChange
from catalog.sync import parse_price, sync_catalog
from tests.helpers.catalog import model_entry

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def test_it_adds_new_models_with_their_details():
    entry = model_entry("openai/gpt-4o", expiration_date="2027-01-15")
    report = sync_catalog([entry, model_entry("openai/gpt-4o-mini")], now=T0)

    assert report.added == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    model = CatalogModel.objects.get(pk="openai/gpt-4o")
    assert model.name == "Test: openai/gpt-4o"
    assert model.canonical_slug == "openai/gpt-4o-2025-01-01"
    assert model.context_length == 128000
    assert model.max_completion_tokens == 16384
    assert model.input_modalities == ["text", "image"]
    assert model.output_modalities == ["text"]
    assert model.tokenizer == "GPT"
    assert model.supports_tools and model.supports_images
    assert model.prompt_price == Decimal("0.0000025")
    assert model.completion_price == Decimal("0.00001")
    assert model.cache_read_price == Decimal("0.00000125")
    assert model.request_price == 0 and model.image_price == 0
    assert model.expiration_date == date(2027, 1, 15)
    assert model.upstream_created == datetime.fromtimestamp(1744651369, tz=UTC)
    assert model.is_available and model.last_synced == T0
    assert model.raw["per_request_limits"] is None


def test_a_new_model_starts_its_price_history():
    sync_catalog([model_entry("a/m")], now=T0)

    change = PriceChange.objects.get(model_id="a/m")
    assert change.source == PriceChange.Source.SYNC
    assert change.effective_from == T0
    assert (change.prompt_price, change.completion_price) == (Decimal("0.0000025"), Decimal("0.00001"))


def test_it_updates_changed_details_without_a_price_change():
    sync_catalog([model_entry("a/m")], now=T0)

    report = sync_catalog([model_entry("a/m", name="Renamed", context_length=200000)], now=T1)

    assert report.updated == ["a/m"] and report.repriced == []
    model = CatalogModel.objects.get(pk="a/m")
    assert (model.name, model.context_length, model.last_synced) == ("Renamed", 200000, T1)
    assert PriceChange.objects.filter(model_id="a/m").count() == 1


def test_a_reprice_writes_the_price_history():
    sync_catalog([model_entry("a/m")], now=T0)

    report = sync_catalog([model_entry("a/m", pricing={"prompt": "0.000003", "completion": "0.00001"})], now=T1)

    assert report.repriced == ["a/m"]
    assert CatalogModel.objects.get(pk="a/m").prompt_price == Decimal("0.000003")
    latest = PriceChange.objects.filter(model_id="a/m").latest()
    assert (latest.prompt_price, latest.effective_from) == (Decimal("0.000003"), T1)
    assert latest.cache_read_price is None
    assert PriceChange.objects.filter(model_id="a/m").count() == 2


BASE_PRICING = {"prompt": "0.0000025", "completion": "0.00001"}


@pytest.mark.parametrize(
    ("key", "field", "before", "after"),
    [
        ("input_cache_write", "cache_write_price", "0.000003", "0.000004"),
        ("web_search", "web_search_price", "0.01", "0.02"),
        ("image", "image_price", "0.001", "0.002"),
        ("request", "request_price", "0.005", "0.006"),
        ("input_cache_read", "cache_read_price", "0.00000125", "0.000001"),
    ],
)
def test_a_change_of_any_price_the_sync_reads_writes_the_price_history(key, field, before, after):
    sync_catalog([model_entry("a/m", pricing={**BASE_PRICING, key: before})], now=T0)
    assert getattr(PriceChange.objects.get(model_id="a/m"), field) == Decimal(before)

    report = sync_catalog([model_entry("a/m", pricing={**BASE_PRICING, key: after})], now=T1)

    assert report.repriced == ["a/m"]
    assert getattr(CatalogModel.objects.get(pk="a/m"), field) == Decimal(after)
    latest = PriceChange.objects.filter(model_id="a/m").latest()
    assert (getattr(latest, field), latest.effective_from, latest.prompt_price) == (
        Decimal(after),
        T1,
        Decimal("0.0000025"),
    )
    assert PriceChange.objects.filter(model_id="a/m").count() == 2


def test_an_admin_price_keeps_the_surface_prices_in_its_history():
    pricing = {**BASE_PRICING, "input_cache_write": "0.000003", "web_search": "0.01"}
    sync_catalog([model_entry("a/m", pricing=pricing)], now=T0)
    set_admin_price("a/m", Decimal("1"), Decimal("2"), None)

    latest = PriceChange.objects.filter(model_id="a/m").latest()
    assert latest.source == PriceChange.Source.ADMIN
    assert (latest.cache_write_price, latest.web_search_price) == (Decimal("0.000003"), Decimal("0.01"))


def test_a_model_gone_upstream_is_marked_unavailable_not_deleted():
    sync_catalog([model_entry("a/stays"), model_entry("a/goes")], now=T0)

    report = sync_catalog([model_entry("a/stays")], now=T1)

    assert report.removed == ["a/goes"]
    gone = CatalogModel.objects.get(pk="a/goes")
    assert not gone.is_available and gone.last_synced == T1
    assert PriceChange.objects.filter(model_id="a/goes").exists()
    assert list(CatalogModel.objects.callable().values_list("pk", flat=True)) == ["a/stays"]


def test_a_model_that_comes_back_is_available_again():
    sync_catalog([model_entry("a/m"), model_entry("a/n")], now=T0)
    sync_catalog([model_entry("a/n")], now=T0)

    report = sync_catalog([model_entry("a/m"), model_entry("a/n")], now=T1)

    assert report.returned == ["a/m"] and report.updated == ["a/m"] and report.added == []
    assert CatalogModel.objects.get(pk="a/m").is_available


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("not a model", "expected an object"),
        ({"name": "no id", "pricing": {}}, "no id"),
        (model_entry("x/no-pricing", pricing=None), "no pricing object"),
        (model_entry("x/bad-context", context_length="lots"), "context_length is not a token count"),
        (model_entry("x/negative-context", context_length=-5), "context_length is not a token count"),
        (model_entry("x/bad-arch", architecture=["text"]), "architecture is not an object"),
        (model_entry("x/bad-params", supported_parameters="tools"), "supported_parameters is not a list"),
        (model_entry("x/bad-name", name=42), "name is not a string"),
        (model_entry("x" * 201), "id longer than 200"),
    ],
)
def test_a_malformed_entry_is_skipped_with_a_reason_and_the_rest_sync(bad, reason, caplog):
    with caplog.at_level(logging.WARNING, logger="catalog.sync"):
        report = sync_catalog([model_entry("a/good"), bad], now=T0)

    assert report.added == ["a/good"]
    assert len(report.skipped) == 1 and reason in report.skipped[0][1]
    assert reason in caplog.text
    assert list(CatalogModel.objects.values_list("pk", flat=True)) == ["a/good"]


def test_a_repeated_id_in_one_listing_is_skipped():
    report = sync_catalog([model_entry("a/m"), model_entry("a/m", name="Twin")], now=T0)

    assert report.skipped == [("a/m", "the same id appears twice in the listing")]
    assert CatalogModel.objects.get(pk="a/m").name == "Test: a/m"


def test_a_known_model_with_a_malformed_entry_is_left_alone_not_removed():
    sync_catalog([model_entry("a/m"), model_entry("a/n")], now=T0)

    report = sync_catalog([model_entry("a/m"), model_entry("a/n", context_length="?")], now=T1)

    assert report.removed == [] and report.skipped[0][0] == "a/n"
    assert CatalogModel.objects.get(pk="a/n").is_available


def test_an_empty_listing_marks_nothing_unavailable():
    sync_catalog([model_entry("a/m")], now=T0)

    report = sync_catalog([{"id": "broken"}], now=T1)

    assert report.removed == []
    assert CatalogModel.objects.get(pk="a/m").is_available


def test_a_second_sync_with_nothing_changed_writes_nothing():
    entries = [model_entry(f"a/m{i}") for i in range(5)] + [
        model_entry("a/router", pricing={"prompt": "-1", "completion": "-1"}),
        model_entry("a/old", expiration_date="2027-01-15", created=1700000000.5),
    ]
    sync_catalog(entries, now=T0)
    sync_catalog(entries[1:], now=T0)
    changes = PriceChange.objects.count()

    with CaptureQueriesContext(connection) as queries:
        report = sync_catalog(entries[1:], now=T1)

    assert not report.changed and report.summary().startswith("added 0, updated 0, repriced 0, removed 0")
    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == []
    assert PriceChange.objects.count() == changes
    assert not CatalogModel.objects.filter(last_synced=T1).exists()


def test_numbers_parsed_as_decimal_by_the_client_sync_and_stay_idempotent():
    entry = model_entry(
        "a/m",
        pricing={"prompt": Decimal("0.000001"), "completion": "0.000002"},
        default_parameters={"temperature": Decimal("0.7")},
        context_length=Decimal("32768"),
    )
    sync_catalog([entry], now=T0)

    model = CatalogModel.objects.get(pk="a/m")
    assert (model.prompt_price, model.context_length) == (Decimal("0.000001"), 32768)
    assert not sync_catalog([entry], now=T1).changed


def test_a_missing_price_key_means_zero():
    sync_catalog([model_entry("a/m", pricing={"prompt": "0.000001"})], now=T0)

    model = CatalogModel.objects.get(pk="a/m")
    assert model.completion_price == 0 and model.request_price == 0 and model.image_price == 0
    assert model.cache_read_price is None
    assert CatalogModel.objects.callable().filter(pk="a/m").exists()


@pytest.mark.parametrize("price", ["-1", "-0.000001", "garbage", "", None, "NaN", "Infinity", True, [], "1e9"])
def test_an_unusable_price_is_unknown_and_the_model_not_callable(price):
    sync_catalog([model_entry("a/m", pricing={"prompt": price, "completion": "0.000002"})], now=T0)

    model = CatalogModel.objects.get(pk="a/m")
    assert model.prompt_price is None and not model.price_known
    assert model.completion_price == Decimal("0.000002")
    assert not CatalogModel.objects.callable().filter(pk="a/m").exists()


def test_an_unusable_per_request_price_makes_the_whole_price_unknown():
    pricing = {"prompt": "0.000001", "completion": "0.000002", "request": "variable"}
    sync_catalog([model_entry("a/m", pricing=pricing)], now=T0)

    model = CatalogModel.objects.get(pk="a/m")
    assert (model.prompt_price, model.completion_price, model.request_price) == (None, None, 0)


def test_prices_are_exact_and_finer_ones_round_up_never_down():
    assert parse_price("0.0000000375") == Decimal("0.0000000375")
    assert parse_price(" 0.000002 ") == Decimal("0.000002")
    assert parse_price("0.0000000000001") == Decimal("0.000000000001")
    assert parse_price("0") == 0


def test_an_admin_price_survives_syncs_until_handed_back():
    sync_catalog([model_entry("a/router", pricing={"prompt": "-1", "completion": "-1"})], now=T0)
    set_admin_price("a/router", Decimal("1.50"), Decimal("6"), None)

    report = sync_catalog([model_entry("a/router", pricing={"prompt": "-1", "completion": "-1"})], now=T1)

    model = CatalogModel.objects.get(pk="a/router")
    assert report.repriced == [] and report.updated == []
    assert (model.prompt_price, model.completion_price) == (Decimal("0.0000015"), Decimal("0.000006"))
    assert PriceChange.objects.filter(model_id="a/router").latest().source == PriceChange.Source.ADMIN

    clear_admin_price("a/router")
    report = sync_catalog([model_entry("a/router", pricing={"prompt": "0.000001", "completion": "0.000001"})], now=T1)

    assert report.repriced == ["a/router"]
    assert CatalogModel.objects.get(pk="a/router").prompt_price == Decimal("0.000001")


def test_the_summary_counts_each_kind_of_change():
    sync_catalog([model_entry("a/keep"), model_entry("a/reprice"), model_entry("a/gone")], now=T0)

    report = sync_catalog(
        [
            model_entry("a/keep"),
            model_entry("a/reprice", pricing={"prompt": "0", "completion": "0"}),
            model_entry("a/new"),
            7,
        ],
        now=T1,
    )

    assert report.summary() == "added 1, updated 1, repriced 1, removed 1, returned 0, skipped 1"


def test_modalities_fall_back_to_the_modality_string():
    arch = {"modality": "text+image->text", "tokenizer": "Other"}
    sync_catalog([model_entry("a/m", architecture=arch)], now=T0)

    model = CatalogModel.objects.get(pk="a/m")
    assert (model.input_modalities, model.output_modalities) == (["text", "image"], ["text"])


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_insert_each_model_once():
    entries = [model_entry(f"a/m{i}") for i in range(300)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            sync_catalog(entries)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert CatalogModel.objects.count() == 300
    assert PriceChange.objects.count() == 300

"""`manage.py sync_models` and the Celery task, against the simulator on a real socket."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from catalog import tasks
from catalog.models import CatalogModel, PriceChange
from openrouter import BadRequest, Overloaded
from orweb.celery import app
from tests.helpers.catalog import model_entry

pytestmark = pytest.mark.django_db


def sync(capsys) -> str:
    call_command("sync_models")
    return capsys.readouterr().out.strip()


def test_the_command_loads_the_simulators_catalog(simulator, capsys):
    upstream = [m["id"] for m in simulator.control("GET", "../api/v1/models?output_modalities=all").json()["data"]]

    out = sync(capsys)

    assert out == f"Catalog synced: added {len(upstream)}, updated 0, repriced 0, removed 0, returned 0, skipped 0"
    assert sorted(CatalogModel.objects.values_list("pk", flat=True)) == sorted(upstream)
    assert CatalogModel.objects.get(pk="openai/gpt-4o").prompt_price == Decimal("0.0000025")
    assert CatalogModel.objects.get(pk="openrouter/auto").prompt_price is None


def test_the_command_follows_changes_made_upstream(simulator, capsys):
    sync(capsys)
    simulator.control("POST", "models", json=model_entry("acme/new-model"))
    gpt = simulator.control("GET", "../api/v1/models").json()["data"][0]
    gpt["pricing"]["prompt"] = "0.000005"
    simulator.control("POST", "models", json=gpt)
    simulator.control("DELETE", "models/openai/gpt-4o-mini")

    out = sync(capsys)

    assert out == "Catalog synced: added 1, updated 1, repriced 1, removed 1, returned 0, skipped 0"
    assert CatalogModel.objects.get(pk=gpt["id"]).prompt_price == Decimal("0.000005")
    assert PriceChange.objects.filter(model_id=gpt["id"]).count() == 2
    assert CatalogModel.objects.get(pk="openai/gpt-4o-mini").is_available is False
    assert CatalogModel.objects.get(pk="acme/new-model").is_available


def test_a_second_run_with_nothing_new_changes_nothing(simulator, capsys):
    sync(capsys)

    assert sync(capsys) == "Catalog synced: added 0, updated 0, repriced 0, removed 0, returned 0, skipped 0"


def test_the_command_fails_clearly_when_the_list_cannot_be_fetched(simulator, settings):
    settings.OPENROUTER_BASE_URL = simulator.root + "/nowhere"

    with pytest.raises(CommandError, match="Could not fetch the model list"):
        call_command("sync_models")


def test_the_task_syncs_and_returns_the_summary(simulator):
    summary = tasks.sync_models.apply().get()

    assert summary.startswith("added ") and CatalogModel.objects.filter(pk="openai/gpt-4o").exists()


def test_the_task_retries_only_what_might_pass_later():
    with mock.patch.object(tasks, "sync_from_openrouter", side_effect=Overloaded("busy", status=503)) as sync_call:
        result = tasks.sync_models.apply()
    assert isinstance(result.result, Overloaded) and sync_call.call_count == 1 + tasks.sync_models.max_retries

    with mock.patch.object(tasks, "sync_from_openrouter", side_effect=BadRequest("no", status=400)) as sync_call:
        result = tasks.sync_models.apply()
    assert isinstance(result.result, BadRequest) and sync_call.call_count == 1


def test_beat_syncs_hourly_and_drops_a_run_that_waited_too_long():
    entry = next(e for e in app.conf.beat_schedule.values() if e["task"] == "catalog.tasks.sync_models")

    assert entry["schedule"].remaining_estimate is not None
    assert entry["schedule"].hour == set(range(24)) and len(entry["schedule"].minute) == 1
    assert entry["options"]["expires"] <= 3600

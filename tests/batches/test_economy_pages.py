"""Economy mode on the batch pages: offered for text-only models (the option marked on the model list), refused
with a form error for a model that takes images, and the estimate shows the list price and the economy price
side by side with the saving."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from django.urls import reverse

from batches import economy
from batches.models import BatchJob
from billing.budgets import set_budget
from orweb.money import format_usd
from tests.batches.test_pages import GOOD, jsonl, upload

pytestmark = pytest.mark.django_db
TEXT = "meta-llama/llama-3.1-8b-instruct"
IMAGES = "openai/gpt-4o-mini"


@pytest.fixture(autouse=True)
def _batch_dir(tmp_path, settings) -> None:
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"


def test_the_form_marks_the_models_economy_mode_serves(owner_client, catalog):
    page = owner_client.get(reverse("batches:index")).content.decode()
    assert f'<option value="{TEXT}" data-economy>' in page
    assert f'<option value="{IMAGES}">' in page
    assert 'name="economy"' in page


def test_a_model_that_takes_images_cant_choose_economy(owner_client, catalog):
    response = upload(owner_client, GOOD, model=IMAGES, economy="1")
    assert response.status_code == 400
    assert (
        f"Economy mode: Not available, not for {IMAGES}: it takes or makes more than text" in response.content.decode()
    )
    assert not BatchJob.objects.exists()


def test_economy_needs_a_default_model(owner_client, catalog):
    response = upload(owner_client, GOOD, economy="1")
    assert response.status_code == 400
    assert "Economy mode: Not available, choose the default model" in response.content.decode()
    assert not BatchJob.objects.exists()


def test_the_estimate_shows_list_and_economy_prices_and_the_saving(owner_client, catalog):
    upload(owner_client, GOOD, model=TEXT, economy="1")
    job = BatchJob.objects.get()
    assert job.economy and job.default_model == TEXT
    page = owner_client.get(reverse("batches:job", args=[job.id])).content.decode()
    half_low, half_high = job.estimate_low / 2, job.estimate_high / 2
    assert f'data-testid="list-estimate">{format_usd(job.estimate_low)} – {format_usd(job.estimate_high)}<' in page
    assert f'data-testid="economy-estimate">{format_usd(half_low)} – {format_usd(half_high)}<' in page
    assert f'data-testid="saving">{format_usd(job.estimate_high - half_high)}<' in page


def test_the_estimate_says_what_economy_holds_and_when_it_is_released(owner_client, catalog, owner):
    upload(owner_client, jsonl(*({"prompt": f"Say {n}"} for n in range(20))), model=TEXT, economy="1")
    job = BatchJob.objects.get()
    # A budget (kept to 4 places) the economy hold fits and the list-price high end doesn't.
    limit = ((economy.held(job) + job.estimate_high) / 2).quantize(Decimal("0.0001"), ROUND_DOWN)
    assert economy.held(job) < limit < job.estimate_high
    set_budget(user=owner, amount=limit)
    page = owner_client.get(reverse("batches:job", args=[job.id])).content.decode()
    assert f'data-testid="economy-held">{format_usd(economy.held(job))}<' in page
    assert "at 60% of its list-price high end" in page and "released when its answer is settled" in page
    assert "released as lines finish" not in page
    assert "Fits your remaining budget" in page


def test_a_plain_job_says_each_line_is_held_while_it_runs(owner_client, catalog):
    upload(owner_client, GOOD, model=TEXT)
    page = owner_client.get(reverse("batches:job", args=[BatchJob.objects.get().id])).content.decode()
    assert "Each line's high end is held against your budget while it runs and released as it finishes." in page


def test_a_plain_job_shows_no_economy_figures(owner_client, catalog):
    upload(owner_client, GOOD, model=TEXT)
    job = BatchJob.objects.get()
    assert not job.economy
    page = owner_client.get(reverse("batches:job", args=[job.id])).content.decode()
    assert 'data-testid="economy"' not in page and "economy mode" not in page


def test_a_submitted_economy_job_offers_no_pause_and_says_why(owner_client, catalog):
    upload(owner_client, GOOD, model=TEXT, economy="1")
    job = BatchJob.objects.get()
    BatchJob.objects.filter(pk=job.pk).update(status="in_progress", remote_state="submitted", remote_id="batch_x")
    page = owner_client.get(reverse("batches:job", args=[job.id])).content.decode()
    assert "it can't be paused now" in page
    assert reverse("batches:pause", args=[job.id]) not in page
    assert reverse("batches:cancel", args=[job.id]) in page

    refused = owner_client.post(reverse("batches:pause", args=[job.id]), follow=True).content.decode()
    assert "can&#x27;t be paused once it is submitted" in refused
    assert BatchJob.objects.get(pk=job.pk).status == "in_progress"

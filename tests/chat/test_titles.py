"""The title model: one that answers (priced, not reasoning, text out, room to answer), or the setting."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from catalog.models import CatalogModel
from chat import titles
from gateway.models import GroupPolicy

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_skips_free_and_reasoning_models(catalog, owner):
    chosen = titles.title_model(owner)
    model = CatalogModel.objects.get(pk=chosen)
    assert "reasoning" not in model.supported_parameters
    assert not model.is_free
    cheaper = [
        m.pk
        for m in CatalogModel.objects.callable().filter(output_modalities__contains=["text"])
        if m.prompt_price + m.completion_price < model.prompt_price + model.completion_price
    ]
    assert cheaper, "the catalog has cheaper models, each free or reasoning"
    assert all(
        CatalogModel.objects.get(pk=pk).is_free or "reasoning" in CatalogModel.objects.get(pk=pk).supported_parameters
        for pk in cheaper
    )


def test_it_skips_a_model_that_cannot_write_enough_tokens(catalog, owner):
    first = titles.title_model(owner)
    CatalogModel.objects.filter(pk=first).update(max_completion_tokens=titles.MAX_TOKENS - 1)
    assert titles.title_model(owner) not in (first, None)


def test_the_setting_wins_when_the_user_may_use_it(catalog, owner, settings):
    settings.ORWEB_TITLE_MODEL = "anthropic/claude-3.5-haiku"
    assert titles.title_model(owner) == "anthropic/claude-3.5-haiku"


def test_the_setting_is_ignored_when_the_policy_forbids_it(catalog, owner, team_group, settings):
    GroupPolicy.objects.create(group=team_group, allowed_models=["openai/gpt-4o-mini"])
    settings.ORWEB_TITLE_MODEL = "anthropic/claude-3.5-haiku"
    assert titles.title_model(owner) == "openai/gpt-4o-mini"


def test_no_allowed_model_answers_gives_none(catalog, owner, team_group):
    GroupPolicy.objects.create(group=team_group, allowed_models=["deepseek/deepseek-r1:free"])
    assert titles.title_model(owner) is None


async def test_the_chosen_model_writes_a_title(catalog, owner, simulator):
    model = await sync_to_async(titles.title_model)(owner)
    title = await titles.make_title(owner, "echo: Trip to Lisbon in May", model)
    assert title == "Trip to Lisbon in May"
    sent = simulator.control("GET", "requests").json()[-1]
    body = sent.get("body", sent)
    assert body["model"] == model
    assert body["max_tokens"] == titles.MAX_TOKENS

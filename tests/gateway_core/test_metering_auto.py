"""orweb/auto*: the documented choice among the models a user may use."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from billing.budgets import remaining_for, set_budget
from billing.models import LedgerEntry
from catalog.models import QualityRank
from gateway import auto, metered
from gateway.models import GroupPolicy
from gateway.policy import shape_of
from orweb.errors import ModelUnavailable
from tests.helpers.metering import TOOLS, ask, image_request, in_thread

PICKS = [
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "meta-llama/llama-3.1-8b-instruct",
    "anthropic/claude-3-haiku",
]


def chosen(user, request) -> str:
    """The model `orweb/auto*` picks for this request, asked as admission asks it."""
    shape = shape_of(request.messages, request.max_tokens, request.params)
    return auto.choose(user, request.model, shape, remaining_for(user)).pk


@pytest.fixture
def limited(owner):
    group = Group.objects.create(name="picks")
    group.user_set.add(owner)
    GroupPolicy.objects.create(group=group, allowed_models=PICKS)
    return owner


@pytest.mark.django_db
def test_cost_picks_the_cheapest_worst_case(catalog, limited):
    assert chosen(limited, ask(model="orweb/auto:cost")) == "meta-llama/llama-3.1-8b-instruct"


@pytest.mark.django_db
def test_images_and_tools_narrow_the_choice(catalog, limited):
    assert chosen(limited, image_request("orweb/auto:cost")) == "openai/gpt-4o-mini"
    tools = ask(model="orweb/auto:cost", params={"tools": TOOLS})
    assert chosen(limited, tools) == "meta-llama/llama-3.1-8b-instruct"


@pytest.mark.django_db
def test_quality_follows_the_admins_ranking_then_the_default_order(catalog, limited):
    # No ranks: the catalog's default order puts the higher price tier first, not the cheapest model.
    assert chosen(limited, ask(model="orweb/auto")) == "openai/gpt-4o"
    QualityRank.objects.create(model_id="anthropic/claude-3-haiku", rank=2)
    QualityRank.objects.create(model_id="meta-llama/llama-3.1-8b-instruct", rank=1)
    assert chosen(limited, ask(model="orweb/auto:quality")) == "meta-llama/llama-3.1-8b-instruct"


@pytest.mark.django_db
def test_the_per_request_cap_and_the_remaining_budget_exclude_models(catalog, limited, settings):
    QualityRank.objects.create(model_id="openai/gpt-4o", rank=1)
    settings.ORWEB_AUTO_MAX_REQUEST_USD = "0.01"  # gpt-4o's worst case with 2048 tokens is ~0.02
    assert chosen(limited, ask(model="orweb/auto")) != "openai/gpt-4o"
    settings.ORWEB_AUTO_MAX_REQUEST_USD = "0.50"
    set_budget(user=limited, amount=Decimal("0.0000001"))
    with pytest.raises(ModelUnavailable):
        chosen(limited, ask(model="orweb/auto"))


@pytest.mark.django_db
def test_speed_prefers_the_fastest_measured_model(catalog, limited):
    for model, latency in (("openai/gpt-4o", 1100), ("anthropic/claude-3-haiku", 300)):
        for _ in range(3):
            LedgerEntry.objects.create(
                user=limited,
                source="chat",
                requested_model=model,
                served_model=model,
                completion_tokens=100,
                cost_source="reported",
                status="ok",
                ttft_ms=100,
                latency_ms=latency,
            )
    assert chosen(limited, ask(model="orweb/auto:speed")) == "anthropic/claude-3-haiku"


@pytest.mark.django_db(transaction=True)
async def test_the_answer_says_which_model_was_chosen(simulator, catalog, limited):
    completion = await metered.complete(limited, ask(model="orweb/auto:cost"), source="api")
    assert completion.result.served_model == "meta-llama/llama-3.1-8b-instruct"
    assert completion.result.requested_model == "orweb/auto:cost"
    async with metered.stream(limited, ask(model="orweb/auto:cost"), source="chat") as call:
        [event async for event in call]
    assert call.chosen_model == call.result.served_model == "meta-llama/llama-3.1-8b-instruct"
    entries = await in_thread(lambda: list(LedgerEntry.objects.values_list("requested_model", flat=True)))()
    assert entries == ["orweb/auto:cost", "orweb/auto:cost"]

"""Policy: who may call what, and requests that don't fit a model are refused before any upstream call."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from billing.models import LedgerEntry
from catalog.models import CatalogModel
from gateway import metered, policy
from gateway.models import GroupPolicy
from orweb.errors import InvalidRequest, ModelNotAllowed, ModelUnavailable
from orweb.upstream import openrouter_user_id
from tests.helpers.metering import TOOLS, ask, image_request, in_thread, upstream_bodies, upstream_calls

live = pytest.mark.django_db(transaction=True)


def _group(name, user, **policy):
    group = Group.objects.create(name=name)
    group.user_set.add(user)
    GroupPolicy.objects.create(group=group, **policy)
    return group


def _allowed(user):
    return set(policy.allowed_models(user).values_list("pk", flat=True))


@pytest.mark.django_db
def test_a_member_of_two_groups_gets_the_union(catalog, owner):
    _group("a", owner, allowed_models=["openai/gpt-4o-mini"])
    _group("b", owner, allowed_models=["anthropic/claude-3-haiku"])
    assert _allowed(owner) == {"openai/gpt-4o-mini", "anthropic/claude-3-haiku"}


@pytest.mark.django_db
def test_a_rule_allows_by_price_and_capability(catalog, owner):
    _group(
        "cheap-vision",
        owner,
        allow_by_rule=True,
        max_price_per_million=Decimal("0.5"),
        required_capabilities=["image", "tools"],
    )
    allowed = _allowed(owner)
    assert "meta-llama/llama-4-scout" in allowed
    assert "openai/gpt-4o" not in allowed  # too expensive
    assert "meta-llama/llama-3.1-8b-instruct" not in allowed  # no image input
    assert "google/gemma-3-27b-it" not in allowed  # no tools
    for model in CatalogModel.objects.filter(pk__in=allowed):
        assert model.completion_price <= Decimal("0.0000005")


@pytest.mark.django_db
def test_admins_are_unrestricted(catalog, staff):
    _group("tiny", staff, allowed_models=["openai/gpt-4o-mini"])
    assert "openai/gpt-4o" in _allowed(staff)


@pytest.mark.django_db
def test_users_without_a_policy_get_everything_callable_by_default(catalog, owner, settings):
    allowed = _allowed(owner)
    assert "openai/gpt-4o" in allowed
    assert "openrouter/auto" not in allowed  # price unknown ("-1")
    settings.ORWEB_DEFAULT_ALLOW_ALL = False
    assert _allowed(owner) == set()


@live
async def test_a_model_outside_the_policy_is_refused(simulator, catalog, owner):
    await in_thread(_group)("a", owner, allowed_models=["openai/gpt-4o-mini"])
    with pytest.raises(ModelNotAllowed) as refused:
        await metered.complete(owner, ask(model="openai/gpt-4o"), source="api")
    assert refused.value.status == 403
    assert upstream_calls(simulator) == 0


@live
async def test_unknown_and_unpriced_models_are_unavailable(simulator, catalog, owner):
    for model in ("nobody/nothing", "openrouter/auto"):
        with pytest.raises(ModelUnavailable):
            await metered.complete(owner, ask(model=model), source="api")
    assert upstream_calls(simulator) == 0


@live
async def test_images_to_a_text_only_model_are_refused_before_any_call(simulator, catalog, owner):
    with pytest.raises(InvalidRequest) as refused:
        await metered.complete(owner, image_request("meta-llama/llama-3.1-8b-instruct"), source="chat")
    assert refused.value.param == "messages"
    assert upstream_calls(simulator) == 0
    completion = await metered.complete(owner, image_request("openai/gpt-4o-mini"), source="chat")
    assert completion.result.status == "ok"


@live
async def test_tools_to_a_tool_less_model_are_refused(simulator, catalog, owner):
    with pytest.raises(InvalidRequest) as refused:
        await metered.complete(owner, ask(model="microsoft/phi-4", params={"tools": TOOLS}), source="api")
    assert refused.value.param == "tools"
    assert upstream_calls(simulator) == 0


@live
async def test_a_prompt_that_overflows_the_context_is_refused(simulator, catalog, owner):
    long_text = "lorem ipsum dolor " * 6000  # ~18k tokens; phi-4 has 16,384
    with pytest.raises(InvalidRequest) as refused:
        await metered.complete(owner, ask(long_text, model="microsoft/phi-4"), source="api")
    assert refused.value.param == "messages"
    with pytest.raises(InvalidRequest) as refused:
        await metered.complete(owner, ask("hi", model="microsoft/phi-4", max_tokens=16_380), source="api")
    assert refused.value.param == "max_tokens"
    assert upstream_calls(simulator) == 0


@live
@pytest.mark.parametrize("bad", [0, -5, "100", 1.5, True])
async def test_max_tokens_must_be_a_positive_integer(simulator, catalog, owner, bad):
    with pytest.raises(InvalidRequest) as refused:
        await metered.complete(owner, ask(max_tokens=bad), source="api")
    assert refused.value.param == "max_tokens"


@live
async def test_max_tokens_is_always_sent_and_capped_by_the_model(simulator, catalog, owner, settings):
    settings.OPENROUTER_DEFAULT_MAX_TOKENS = 700
    await metered.complete(owner, ask(model="openai/gpt-3.5-turbo", max_tokens=50_000), source="api")
    await metered.complete(owner, ask(model="openai/gpt-4o-mini"), source="api")
    bodies = upstream_bodies(simulator)
    assert [b["max_tokens"] for b in bodies] == [4096, 700]


@live
async def test_the_upstream_body_carries_a_hashed_user_and_no_rerouting_fields(simulator, catalog, owner):
    request = ask(
        params={
            "temperature": 0.2,
            "models": ["openai/gpt-4o"],
            "user": "someone-else",
            "route": "fallback",
            "provider": {"ignore": ["Azure"], "max_price": {"prompt": 1}},
        }
    )
    await metered.complete(owner, request, source="api")
    body = upstream_bodies(simulator)[0]
    assert body["user"] == openrouter_user_id(owner.pk)
    assert body["user"].startswith("orweb-") and len(body["user"]) == 38
    assert body["temperature"] == 0.2
    assert "models" not in body and "route" not in body
    assert body["provider"] == {"ignore": ["Azure"], "max_price": {"prompt": 1}}


@live
async def test_fallbacks_that_cannot_take_the_request_are_skipped_with_the_reason(simulator, catalog, owner):
    simulator.fault("openai/gpt-4o-mini", "status=503")
    request = image_request("openai/gpt-4o-mini")
    request.max_tokens = 5000
    request.fallback_models = [
        "openai/gpt-4o-mini",  # the model itself
        "nobody/nothing",  # not in the catalog
        "meta-llama/llama-3.1-8b-instruct",  # no image input
        "anthropic/claude-3-haiku",  # answers at most 4096 tokens
        "openai/gpt-4o",
    ]
    completion = await metered.complete(owner, request, source="chat")
    assert completion.result.served_model == "openai/gpt-4o"
    skipped = dict(completion.result.skipped)
    assert list(skipped) == [
        "nobody/nothing",
        "meta-llama/llama-3.1-8b-instruct",
        "anthropic/claude-3-haiku",
        "openai/gpt-4o-mini",
    ]
    assert "not available" in skipped["nobody/nothing"]
    assert "does not accept images" in skipped["meta-llama/llama-3.1-8b-instruct"]
    assert "max_tokens 5000 is above the limit" in skipped["anthropic/claude-3-haiku"]
    entry = await in_thread(LedgerEntry.objects.get)()
    [(generation_id, generation)] = simulator.app.state.sim.generations.items()
    assert (entry.served_model, entry.generation_id, entry.cost) == ("openai/gpt-4o", generation_id, generation.cost)

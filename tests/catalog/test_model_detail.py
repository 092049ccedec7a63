"""A model's page at /models/<id>/ and the new filters of the models page: what they show, to whom."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import CatalogModel, PriceChange
from gateway.models import GroupPolicy
from tests.billing.rollups import add_usage

pytestmark = pytest.mark.django_db

MODEL = "anthropic/claude-sonnet-4"


def detail_url(model_id: str) -> str:
    return f"/models/{model_id}/"


def listed(response) -> list[str]:
    return [m.pk for m in response.context["page"].object_list]


def test_it_shows_what_the_model_is_takes_and_costs(catalog, owner_client):
    response = owner_client.get(detail_url(MODEL))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Anthropic: Claude Sonnet 4" in html
    assert 'data-fact="context">200,000 tokens' in html
    assert 'data-fact="input">image, text, file' in html
    assert "<code>reasoning</code>" in html
    assert 'data-fact="prompt">$3.00 per million tokens' in html
    assert "Cache write" in html
    assert f'href="/chat/new/?model={MODEL}"' in html


def test_it_charts_the_price_history_in_steps_up_to_today(catalog, owner_client):
    model = CatalogModel.objects.get(pk=MODEL)
    PriceChange.objects.filter(model=model).update(effective_from=timezone.now() - dt.timedelta(days=40))
    PriceChange.objects.create(
        model=model,
        prompt_price=Decimal("0.000002"),
        completion_price=Decimal("0.00001"),
        effective_from=timezone.now() - dt.timedelta(days=10),
    )
    response = owner_client.get(detail_url(MODEL))
    chart = response.context["chart"]
    assert len(chart["labels"]) == 3
    assert chart["labels"][-1] == timezone.now().astimezone(dt.UTC).date().isoformat()
    assert chart["series"][0]["data"] == ["3", "2", "3"]
    assert chart["series"][1]["data"] == ["15", "10", "15"]
    data = response.content.decode().split('id="price-history" type="application/json">')[1].split("</script>")[0]
    assert json.loads(data) == chart


def test_it_shows_what_the_model_cost_the_team_this_month(catalog, owner, teammate, owner_client):
    today = timezone.localdate()
    for user, cost in ((owner, "0.25"), (teammate, "0.5")):
        add_usage(today, user, MODEL, cost=Decimal(cost))
    add_usage(today.replace(day=1) - dt.timedelta(days=1), owner, MODEL, cost=Decimal(9))
    add_usage(today, owner, "openai/gpt-4o", cost=Decimal(7))
    response = owner_client.get(detail_url(MODEL))
    assert response.context["team_cost"] == Decimal("0.75")
    assert "data-team-cost>$0.75" in response.content.decode()


def test_a_model_the_user_may_not_use_is_not_found(catalog, owner, owner_client, team_group):
    GroupPolicy.objects.create(group=team_group, allowed_models=["openai/gpt-4o"])
    assert owner_client.get(detail_url("openai/gpt-4o")).status_code == 200
    assert owner_client.get(detail_url(MODEL)).status_code == 404
    assert owner_client.get(detail_url("no/such-model")).status_code == 404


def test_staff_see_every_model_even_unpriced(catalog, staff_client):
    assert staff_client.get(detail_url("openrouter/auto")).status_code == 200


def test_it_needs_a_sign_in(catalog, client):
    response = client.get(detail_url(MODEL))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_ids_with_colons_are_found(catalog, owner_client):
    response = owner_client.get(detail_url("deepseek/deepseek-r1:free"))
    assert response.status_code == 200
    assert "Start a chat" in response.content.decode()


def test_the_list_shows_only_models_the_user_may_use(catalog, owner_client, team_group):
    GroupPolicy.objects.create(group=team_group, allowed_models=["openai/gpt-4o", MODEL])
    assert sorted(listed(owner_client.get("/models/"))) == [MODEL, "openai/gpt-4o"]


@pytest.mark.parametrize(
    ("query", "expected_in", "expected_out"),
    [
        ("reasoning=1", "deepseek/deepseek-r1", "openai/gpt-4o"),
        ("input=audio", "google/gemini-2.5-pro", "openai/gpt-4o"),
        ("input=file", "openai/gpt-4o", "qwen/qwq-32b"),
        ("output=text", "openai/gpt-4o", None),
        ("provider=anthropic", MODEL, "openai/gpt-4o"),
    ],
)
def test_the_list_filters_by_modality_reasoning_and_provider(catalog, owner_client, query, expected_in, expected_out):
    ids = listed(owner_client.get(f"/models/?{query}"))
    assert expected_in in ids
    if expected_out:
        assert expected_out not in ids


def test_the_provider_filter_offers_the_makers_of_usable_models(catalog, owner_client, team_group):
    GroupPolicy.objects.create(group=team_group, allowed_models=["openai/gpt-4o", MODEL])
    response = owner_client.get("/models/")
    assert response.context["providers"] == ["anthropic", "openai"]


def test_the_list_links_each_model_to_its_page(catalog, owner_client):
    html = owner_client.get("/models/?q=sonnet-4").content.decode()
    assert f'href="/models/{MODEL}/"' in html


def test_start_a_chat_preselects_the_model(catalog, owner_client):
    response = owner_client.get(f"/chat/new/?model={MODEL}")
    assert response.context["form"].initial["model"] == MODEL


def test_start_a_chat_ignores_a_model_the_user_may_not_use(catalog, owner_client, team_group):
    GroupPolicy.objects.create(group=team_group, allowed_models=["openai/gpt-4o"])
    response = owner_client.get(f"/chat/new/?model={MODEL}")
    assert response.context["form"].initial["model"] == "orweb/auto"

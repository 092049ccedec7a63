"""GET /v1/models (what this key's user may call) and GET /v1/key (OpenRouter's /key shape)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import openai
import pytest
from django.contrib.auth.models import Group
from freezegun import freeze_time

from billing.budgets import set_budget
from billing.models import DailyUsage
from catalog.models import CatalogModel
from gateway.models import GroupPolicy
from gateway.types import AUTO_MODELS
from tests.api.conftest import sdk

pytestmark = pytest.mark.django_db(transaction=True)


def key_info(live_app, secret: str) -> dict:
    response = httpx.get(live_app.url + "/v1/key", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    return response.json()["data"]


def test_models_lists_what_the_user_may_call_with_prices(api):
    models = {m.id: m for m in api.models.list()}
    assert set(AUTO_MODELS) <= set(models)
    mini = models["openai/gpt-4o-mini"].model_dump()
    assert mini["object"] == "model" and mini["owned_by"] == "openai"
    assert mini["pricing"]["prompt"] == "0.00000015" and mini["pricing"]["completion"] == "0.0000006"
    assert mini["context_length"] == 128000
    callable_ids = set(
        CatalogModel.objects.filter(is_available=True, prompt_price__isnull=False).values_list("id", flat=True)
    )
    assert set(models) - set(AUTO_MODELS) == callable_ids


def test_models_follows_the_group_policy(api, owner):
    group = Group.objects.create(name="interns")
    GroupPolicy.objects.create(group=group, allowed_models=["openai/gpt-4o-mini", "openai/gpt-4o"])
    owner.groups.add(group)
    assert {m.id for m in api.models.list()} - set(AUTO_MODELS) == {"openai/gpt-4o-mini", "openai/gpt-4o"}


def test_models_needs_a_valid_key(live_app, catalog):
    with pytest.raises(openai.AuthenticationError):
        sdk(live_app, "orw-wrong").models.list()


def test_key_without_a_budget_has_no_limit(live_app, catalog, owner_key):
    data = key_info(live_app, owner_key.secret)
    assert data["limit"] is None and data["limit_remaining"] is None
    assert data["usage"] == 0 and data["label"].startswith("olivia laptop")


@freeze_time("2026-03-18 12:00", tick=True)  # a Wednesday: today, this week and this month stay put
def test_key_reports_the_tightest_budget_and_this_periods_spend(live_app, catalog, owner, owner_key, team_group):
    set_budget(user=owner, amount=Decimal("10"))
    set_budget(group=team_group, amount=Decimal("2"), period="week")
    day = dt.date(2026, 3, 18)
    DailyUsage.objects.create(day=day, user=owner, model="m", source="api", requests=1, cost=Decimal("0.25"))
    DailyUsage.objects.create(
        day=day - dt.timedelta(days=40),
        user=owner,
        model="m",
        source="api",
        requests=1,
        cost=Decimal("5"),
    )
    data = key_info(live_app, owner_key.secret)
    assert data["limit"] == 2.0 and data["limit_reset"] == "weekly"
    assert data["usage"] == 0.25 and data["usage_daily"] == 0.25 and data["usage_monthly"] == 0.25


def test_key_counts_real_calls(api, live_app, owner, owner_key):
    set_budget(user=owner, amount=Decimal("1"))
    reply = api.chat.completions.create(
        model="openai/gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    cost = Decimal(str(reply.usage.model_extra["cost"]))
    data = key_info(live_app, owner_key.secret)
    assert Decimal(str(data["usage"])) == cost
    assert Decimal(str(data["limit_remaining"])) == Decimal(1) - cost

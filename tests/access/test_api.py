"""/v1 answers for the user whose key is sent, whoever else is signed in in the same browser; a key
speaks for its owner only, and once revoked for nobody."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from billing.models import DailyUsage
from gateway.keys import revoke
from gateway.models import ApiKey, GroupPolicy
from gateway.types import AUTO_MODELS
from tests.helpers.personas import api_key

pytestmark = pytest.mark.django_db(transaction=True)  # /v1 reads keys on the loop's thread pool

DAY = dt.date(2026, 11, 14)
TEAM_MODELS = {"openai/gpt-4o-mini"}


@pytest.fixture(autouse=True)
def _mid_month():
    """/v1/key sums spend by UTC day and month: noon mid-month keeps both still while a test runs."""
    with freeze_time(f"{DAY} 12:00:00", tick=True):
        yield


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_key_reports_the_keys_user_not_the_signed_in_one(side, side_user, owner, owner_client):
    DailyUsage.objects.create(day=DAY, user=owner, model="m", source="api", requests=1, cost=Decimal("7.77"))
    secret = api_key(side_user, f"{side}'s key")

    data = owner_client.get(reverse("api:key"), **bearer(secret)).json()["data"]

    assert data["label"].startswith(f"{side}'s key")
    assert data["usage_monthly"] == (7.77 if side == "owner" else 0)


def test_models_follow_the_keys_users_groups(side, side_user, catalog, team_group):
    """The owner's group allows one model: the owner and the teammate get it alone, the outsider (another
    group, no policy) and staff (unrestricted) get everything callable."""
    GroupPolicy.objects.create(group=team_group, allowed_models=sorted(TEAM_MODELS))
    secret = api_key(side_user)

    listed = {m["id"] for m in Client().get(reverse("api:models"), **bearer(secret)).json()["data"]} - set(AUTO_MODELS)

    if side in ("owner", "teammate"):
        assert listed == TEAM_MODELS
    else:
        assert listed > TEAM_MODELS


def test_a_revoked_key_speaks_for_nobody(side_client, owner):
    secret = api_key(owner)
    revoke(ApiKey.objects.get(user=owner), owner)

    response = side_client.get(reverse("api:key"), **bearer(secret))

    assert response.status_code == 401

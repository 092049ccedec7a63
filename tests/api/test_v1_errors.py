"""Every refusal and failure of /v1, as the official SDK sees it: OpenAI's error shape, the right status."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest
from django.contrib.auth.models import Group

from billing.budgets import set_budget
from billing.models import LedgerEntry, RateLimit
from gateway.keys import revoke
from gateway.models import GroupPolicy
from tests.api.conftest import sdk

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "hi"}]


def ask(client, text: str = "hi", **fields):
    return client.chat.completions.create(
        **{"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 50, **fields}
    )


def error_of(raised) -> dict:
    body = raised.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize("secret", ["orw-not-a-real-key-at-all", "sk-or-v1-the-server-key", ""])
def test_a_bad_key_is_401(live_app, catalog, secret):
    with pytest.raises(openai.AuthenticationError) as raised:
        ask(sdk(live_app, secret or "x"))
    assert error_of(raised)["type"] == "authentication_error"


def test_a_missing_key_is_401(live_app, catalog):
    response = httpx.post(live_app.url + "/v1/chat/completions", json={"model": MODEL, "messages": HI})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_a_revoked_key_is_401(live_app, catalog, owner, owner_key):
    revoke(owner_key.key, owner)
    with pytest.raises(openai.AuthenticationError):
        ask(sdk(live_app, owner_key.secret))


def test_an_invalid_field_is_a_400_naming_it(api):
    with pytest.raises(openai.BadRequestError) as raised:
        ask(api, temperature=3)
    error = error_of(raised)
    assert error["param"] == "temperature" and "temperature" in error["message"]


def test_malformed_json_is_a_400(live_app, catalog, owner_key):
    headers = {"Authorization": f"Bearer {owner_key.secret}", "Content-Type": "application/json"}
    response = httpx.post(live_app.url + "/v1/chat/completions", content=b"{nope", headers=headers)
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_a_refused_routing_field_is_a_400(api):
    with pytest.raises(openai.BadRequestError) as raised:
        ask(api, extra_body={"provider": {"sort": "exacto"}})
    assert error_of(raised)["param"] == "provider.sort"


def test_an_exhausted_budget_is_402_naming_the_budget_and_what_remains(api, owner):
    set_budget(user=owner, amount=Decimal("0.00001"))
    with pytest.raises(openai.APIStatusError) as raised:
        ask(api)
    assert raised.value.status_code == 402
    error = error_of(raised)
    assert error["code"] == "budget_exceeded"
    assert "monthly budget of user olivia" in error["message"] and "$0 remains" in error["message"]
    assert not LedgerEntry.objects.exists()


def test_a_model_the_group_policy_does_not_allow_is_403(api, owner):
    group = Group.objects.create(name="interns")
    GroupPolicy.objects.create(group=group, allowed_models=[MODEL])
    owner.groups.add(group)
    assert ask(api).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as raised:
        ask(api, model="anthropic/claude-sonnet-4")
    assert error_of(raised)["type"] == "permission_error"


def test_an_unknown_model_is_404(api):
    with pytest.raises(openai.NotFoundError):
        ask(api, model="nobody/no-such-model")


def test_a_rate_limited_user_gets_429_with_retry_after(api, owner):
    RateLimit.objects.create(user=owner, requests_per_minute=1)
    ask(api)
    with pytest.raises(openai.RateLimitError) as raised:
        ask(api)
    assert int(raised.value.response.headers["Retry-After"]) >= 1
    assert error_of(raised)["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("status=503 retry_after=0", 503),
        ("status=502 retry_after=0", 502),
        ("status=402", 503),
        ("status=429 retry_after=0", 429),
    ],
)
def test_upstream_failures_are_mapped(api, fault, status):
    with pytest.raises(openai.APIStatusError) as raised:
        ask(api, f"hi [[sim {fault}]]")
    assert raised.value.status_code == status
    if status in (429, 503) and fault != "status=402":
        assert "Retry-After" in raised.value.response.headers
    assert LedgerEntry.objects.get().status == "error"


def test_an_upstream_error_mid_stream_ends_with_an_error_chunk(api):
    stream = ask(api, "echo: a b c d e f g h [[sim error_after=3]]", stream=True)
    with pytest.raises(openai.APIError, match="."):
        list(stream)
    assert LedgerEntry.objects.get().status == "error"


def test_the_redis_being_down_fails_closed_with_503(api, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(openai.APIStatusError) as raised:
        ask(api)
    assert raised.value.status_code == 503
    assert not LedgerEntry.objects.exists()


def test_a_get_is_405(live_app, owner_key):
    headers = {"Authorization": f"Bearer {owner_key.secret}"}
    response = httpx.get(live_app.url + "/v1/chat/completions", headers=headers)
    assert response.status_code == 405


async def test_a_key_the_database_cannot_read_is_a_503_not_a_crash(monkeypatch):
    from django.db import DataError
    from django.test import AsyncClient

    from gateway import api

    async def unreadable(secret):
        raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    monkeypatch.setattr(api, "_authenticate_off_loop", unreadable)
    response = await AsyncClient().get("/v1/models", headers={"Authorization": "Bearer orw-x"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"

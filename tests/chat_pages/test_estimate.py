"""The price before Send: the composer's estimate endpoint and compare's per-model estimates."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from billing.budgets import set_budget
from chat.conversations import create_conversation, send
from chat.models import Attachment
from gateway.estimate import estimate
from gateway.models import GroupPolicy
from gateway.types import ChatRequest

pytestmark = pytest.mark.django_db

MODEL = "openai/gpt-4o-mini"


def ask(client, conversation, content="How far is the moon?", attachments=()):
    return client.post(
        f"/chat/{conversation.pk}/estimate",
        json.dumps({"content": content, "attachments": list(attachments)}),
        content_type="application/json",
    )


@pytest.fixture
def chat(owner, catalog):
    return create_conversation(owner, model=MODEL, title="Moon")


def test_it_prices_the_draft_with_the_history_as_a_send_would(chat, owner, owner_client):
    send(chat, "An earlier question about the moon, with some length to it. " * 20)
    answer = ask(owner_client, chat).json()
    chat.refresh_from_db()
    expected = estimate(
        owner,
        ChatRequest(
            model=MODEL,
            messages=[
                {"role": "user", "content": "An earlier question about the moon, with some length to it. " * 20},
                {"role": "user", "content": "How far is the moon?"},
            ],
        ),
    )
    assert answer["ok"] is True
    assert Decimal(answer["low"]) <= Decimal(answer["high"])
    assert Decimal(answer["high"]) == expected.high
    assert answer["text"].startswith("≈ $")


def test_it_says_what_the_budget_keeps_after_the_worst_case(chat, owner, owner_client):
    set_budget(user=owner, amount=Decimal(5), period="month")
    answer = ask(owner_client, chat).json()
    assert Decimal(answer["remaining"]) == Decimal(5) - Decimal(answer["high"])
    assert "of your budget" in answer["text"]


def test_a_budget_too_small_is_said_plainly(chat, owner, owner_client):
    set_budget(user=owner, amount=Decimal("0.0000001"), period="month")
    answer = ask(owner_client, chat).json()
    assert "more than your budget has left" in answer["text"]


def test_a_model_the_policy_forbids_gets_the_reason(chat, owner_client, team_group):
    GroupPolicy.objects.create(group=team_group, allowed_models=["openai/gpt-4o"])
    answer = ask(owner_client, chat).json()
    assert answer["ok"] is False and answer["text"]


def test_attachments_must_be_the_users_own(chat, owner_client, teammate):
    theirs = Attachment.objects.create(user=teammate, mime="image/png", size=1, sha256="x", data=b"x")
    response = ask(owner_client, chat, attachments=[theirs.pk])
    assert response.status_code == 404


@pytest.mark.parametrize(
    "body", ['{"content": 5}', '{"content": "a", "attachments": "1"}', "not json", '{"content": "a\\u0000"}']
)
def test_a_malformed_draft_is_a_400(chat, owner_client, body):
    response = owner_client.post(f"/chat/{chat.pk}/estimate", body, content_type="application/json")
    assert response.status_code == 400


def test_another_users_conversation_is_not_found(chat, teammate_client):
    assert ask(teammate_client, chat).status_code == 404


def test_it_takes_no_get_and_needs_csrf(chat, owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert strict.get(f"/chat/{chat.pk}/estimate").status_code == 405
    assert ask(strict, chat).status_code == 403


def test_compare_prices_each_chosen_model(owner_client, catalog):
    response = owner_client.post(
        "/chat/compare/estimate", {"prompt": "Hello there", "models": [MODEL, "anthropic/claude-sonnet-4"]}
    )
    models = response.json()["models"]
    assert set(models) == {MODEL, "anthropic/claude-sonnet-4"}
    assert Decimal(models[MODEL]["high"]) < Decimal(models["anthropic/claude-sonnet-4"]["high"])


def test_the_composer_asks_for_the_estimate(chat, owner_client):
    html = owner_client.get(f"/chat/{chat.pk}/").content.decode()
    assert f'data-estimate-url="/chat/{chat.pk}/estimate"' in html and "data-estimate " in html

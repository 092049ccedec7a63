"""Compare: one prompt to 2–4 models, a page of columns, and "continue with this one"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db

MODELS = ["openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"]


def test_it_starts_one_conversation_per_model(owner_client, owner, three_models):
    response = owner_client.post(reverse("chat:compare"), {"prompt": "Name a colour", "models": MODELS})
    columns = Conversation.objects.filter(user=owner).order_by("pk")
    assert [c.model for c in columns] == MODELS
    group = columns[0].compare_group
    assert group is not None and all(c.compare_group == group for c in columns)
    assert response["Location"] == reverse("chat:compare_view", args=[group])
    assert Message.objects.filter(conversation__in=columns, role="assistant", status="pending").count() == 2


def test_it_needs_two_to_four_models(owner_client, three_models):
    response = owner_client.post(reverse("chat:compare"), {"prompt": "x", "models": MODELS[:1]})
    assert response.status_code == 400
    assert b"two to four" in response.content
    assert not Conversation.objects.exists()


def test_it_shows_a_column_per_model(owner_client, owner, three_models):
    owner_client.post(reverse("chat:compare"), {"prompt": "Name a colour", "models": MODELS})
    group = Conversation.objects.filter(user=owner).first().compare_group
    body = owner_client.get(reverse("chat:compare_view", args=[group])).content.decode()
    assert body.count("data-compare ") == 2
    assert body.count("Continue with this one") == 2
    assert body.count('data-raw="Name a colour"') == 2


def test_it_hides_a_comparison_from_an_outsider(owner_client, outsider_client, owner, three_models):
    owner_client.post(reverse("chat:compare"), {"prompt": "Name a colour", "models": MODELS})
    group = Conversation.objects.filter(user=owner).first().compare_group
    assert outsider_client.get(reverse("chat:compare_view", args=[group])).status_code == 404


def test_it_keeps_the_chosen_column_as_a_normal_conversation(owner_client, owner, three_models):
    owner_client.post(reverse("chat:compare"), {"prompt": "Name a colour", "models": MODELS})
    kept, dropped = Conversation.objects.filter(user=owner).order_by("pk")
    response = owner_client.post(reverse("chat:keep", args=[kept.pk]))
    assert response["Location"] == reverse("chat:conversation", args=[kept.pk])
    kept.refresh_from_db()
    assert kept.compare_group is None
    assert not Conversation.objects.filter(pk=dropped.pk).exists()


def test_it_sends_a_compare_column_to_its_compare_page(owner_client, owner, three_models):
    owner_client.post(reverse("chat:compare"), {"prompt": "Name a colour", "models": MODELS})
    column = Conversation.objects.filter(user=owner).first()
    response = owner_client.get(reverse("chat:conversation", args=[column.pk]))
    assert response["Location"] == reverse("chat:compare_view", args=[column.compare_group])

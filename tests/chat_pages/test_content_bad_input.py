"""Input the chat pages can't take is a 4xx that says why, never a 500: a search with NUL, a compare
prompt too long for a model's context (and then nothing is stored)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.models import CatalogModel
from chat.models import Conversation

pytestmark = pytest.mark.django_db

MODELS = ["openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"]


def test_a_search_with_nul_is_a_400_over_the_whole_list(owner_client, trip):
    response = owner_client.get(reverse("chat:index"), {"q": "Par\x00is"})

    assert response.status_code == 400
    body = response.content.decode()
    assert "A search can&#x27;t contain a NUL character" in body
    assert trip.title in body


def test_a_live_search_with_nul_is_a_400_saying_why(owner_client, trip):
    response = owner_client.get(reverse("chat:index"), {"q": "\x00"}, headers={"HX-Request": "true"})

    assert response.status_code == 400
    assert response.content.decode().startswith("A search can't contain a NUL character")


def test_a_compare_prompt_too_long_for_a_model_is_a_400_and_starts_nothing(owner_client, three_models):
    CatalogModel.objects.filter(pk=MODELS[1]).update(context_length=1000)

    response = owner_client.post(
        reverse("chat:compare"), {"prompt": " ".join(f"w{i}" for i in range(2000)), "models": MODELS}
    )

    assert response.status_code == 400
    assert f"{MODELS[1]} takes at most" in response.content.decode()
    assert not Conversation.objects.exists()

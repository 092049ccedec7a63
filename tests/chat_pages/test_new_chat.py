"""New chat: the model picker lists only callable models (plus auto), settings are validated, presets."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from catalog.models import CatalogModel
from chat.models import Conversation, Preset
from gateway.models import GroupPolicy

pytestmark = pytest.mark.django_db


def test_it_lists_allowed_models_with_prices_and_auto_choices(owner_client, three_models):
    body = owner_client.get(reverse("chat:new")).content.decode()
    assert 'value="orweb/auto:cost"' in body
    assert 'value="openai/gpt-4o-mini"' in body
    assert "$0.15 in · $0.60 out" in body
    assert 'data-images="1"' in body and 'data-tools="1"' in body
    assert 'value="x/unpriced"' not in body


def test_it_hides_models_a_group_policy_does_not_allow(owner_client, owner, three_models):
    group = Group.objects.create(name="interns")
    owner.groups.add(group)
    GroupPolicy.objects.create(group=group, allowed_models=["meta-llama/llama-3.1-8b-instruct"])
    body = owner_client.get(reverse("chat:new")).content.decode()
    assert 'value="meta-llama/llama-3.1-8b-instruct"' in body
    assert 'value="openai/gpt-4o-mini"' not in body
    response = owner_client.post(reverse("chat:new"), {"model": "openai/gpt-4o-mini"})
    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_it_creates_a_conversation_with_its_settings(owner_client, owner, three_models):
    response = owner_client.post(
        reverse("chat:new"),
        {
            "model": "openai/gpt-4o-mini",
            "system_prompt": "Be brief.",
            "temperature": "0.3",
            "max_tokens": "500",
            "tools": ["calculator", "current_time"],
            "fallback_models": ["meta-llama/llama-3.1-8b-instruct"],
        },
    )
    convo = Conversation.objects.get(user=owner)
    assert response["Location"] == reverse("chat:conversation", args=[convo.pk])
    assert (convo.model, convo.system_prompt, convo.temperature, convo.max_tokens) == (
        "openai/gpt-4o-mini",
        "Be brief.",
        Decimal("0.30"),
        500,
    )
    assert convo.tools == ["calculator", "current_time"]
    assert convo.fallback_models == ["meta-llama/llama-3.1-8b-instruct"]


def test_it_rejects_out_of_range_parameters(owner_client, three_models):
    response = owner_client.post(reverse("chat:new"), {"model": "orweb/auto", "temperature": "7"})
    assert response.status_code == 400
    assert b"Temperature" in response.content
    assert not Conversation.objects.exists()


def test_it_rejects_unknown_tools(owner_client, three_models):
    response = owner_client.post(reverse("chat:new"), {"model": "orweb/auto", "tools": ["rm_rf"]})
    assert response.status_code == 400


def test_it_saves_applies_and_deletes_presets(owner_client, owner, outsider, three_models):
    response = owner_client.post(
        reverse("chat:save_preset"),
        {"name": "Terse", "model": "openai/gpt-4o-mini", "system_prompt": "One line.", "max_tokens": "100"},
    )
    preset = Preset.objects.get(user=owner, name="Terse")
    assert response["Location"] == f"{reverse('chat:new')}?preset={preset.pk}"
    body = owner_client.get(reverse("chat:new"), {"preset": preset.pk}).content.decode()
    assert "One line.</textarea>" in body
    assert 'value="openai/gpt-4o-mini" checked' in body
    assert 'value="100"' in body
    owner_client.post(reverse("chat:delete_preset", args=[preset.pk]))
    assert not Preset.objects.filter(pk=preset.pk).exists()


def test_a_preset_keeps_every_setting_of_the_form(owner_client, owner, three_models):
    owner_client.post(
        reverse("chat:save_preset"),
        {
            "name": "Deep",
            "model": "openai/gpt-4o-mini",
            "fallback_models": ["meta-llama/llama-3.1-8b-instruct"],
            "reasoning": "high",
            "web_search": "on",
            "pdf_engine": "mistral-ocr",
        },
    )
    preset = Preset.objects.get(user=owner, name="Deep")
    assert [preset.reasoning, preset.web_search, preset.pdf_engine] == ["high", True, "mistral-ocr"]
    assert preset.fallback_models == ["meta-llama/llama-3.1-8b-instruct"]
    body = owner_client.get(reverse("chat:new"), {"preset": preset.pk}).content.decode()
    assert '<option value="high" selected>' in body
    assert '<option value="mistral-ocr" selected>' in body
    assert 'name="web_search" value="on" checked' in body
    assert '<option value="meta-llama/llama-3.1-8b-instruct" selected>' in body
    assert '<details class="settings-more" open>' in body


def test_it_refuses_a_preset_without_a_name(owner_client, three_models):
    response = owner_client.post(reverse("chat:save_preset"), {"model": "orweb/auto", "system_prompt": "Kept"})
    assert response.status_code == 400
    assert b"Name the preset to save it." in response.content
    assert b"Kept</textarea>" in response.content  # what was typed is still there
    assert not Preset.objects.exists()


def test_it_does_not_apply_another_users_preset(owner_client, outsider, three_models):
    theirs = Preset.objects.create(user=outsider, name="Secret", model="openai/gpt-4o-mini", system_prompt="hidden")
    assert owner_client.get(reverse("chat:new"), {"preset": theirs.pk}).status_code == 404


def test_it_leaves_out_embedding_models_which_cannot_chat(owner_client, catalog):
    embedder = CatalogModel.objects.filter(output_modalities__contains=["embeddings"]).first()
    assert embedder is not None, "the simulator's catalog has embedding models"
    body = owner_client.get(reverse("chat:new")).content.decode()
    assert 'value="openai/gpt-4o-mini"' in body
    assert f'value="{embedder.id}"' not in body
    response = owner_client.post(reverse("chat:new"), {"model": embedder.id})
    assert response.status_code == 400
    assert not Conversation.objects.exists()

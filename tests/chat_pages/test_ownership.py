"""Anonymous visitors are sent to sign in before any chat action runs. (Who may open and change what,
from each persona's side, is tests/access/test_pages.py.)"""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Conversation, Preset

pytestmark = pytest.mark.django_db


def test_every_chat_action_sends_anonymous_visitors_to_sign_in(client, owner, trip):
    preset = Preset.objects.create(user=owner, name="Terse", model="openai/gpt-4o-mini")
    pk = trip.pk
    actions = [
        ("get", reverse("chat:delete", args=[pk])),
        ("post", reverse("chat:delete", args=[pk])),
        ("post", reverse("chat:rename", args=[pk])),
        ("post", reverse("chat:settings", args=[pk])),
        ("post", reverse("chat:upload_attachment", args=[pk])),
        ("post", reverse("chat:keep", args=[pk])),
        ("post", reverse("chat:delete_preset", args=[preset.pk])),
    ]
    for method, url in actions:
        response = getattr(client, method)(url, {"title": "pwned"} if method == "post" else None)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    assert Conversation.objects.get(pk=pk).title == "Trip planning"
    assert Preset.objects.filter(pk=preset.pk).exists()

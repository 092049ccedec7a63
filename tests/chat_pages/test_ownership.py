"""Every chat page, action and download answers 404 to someone who doesn't own the object."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Attachment, Conversation, Preset
from tests.chat_pages.conftest import tiny_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned(owner, conversation):
    data = tiny_png()
    attachment = Attachment.objects.create(
        user=owner,
        conversation=conversation,
        name="a.png",
        mime="image/png",
        size=len(data),
        sha256="x",
        data=data,
    )
    preset = Preset.objects.create(user=owner, name="Terse", model="openai/gpt-4o-mini")
    return conversation, attachment, preset


def _urls(conversation, attachment, preset) -> list[tuple[str, str]]:
    pk = conversation.pk
    return [
        ("get", reverse("chat:conversation", args=[pk])),
        ("get", reverse("chat:delete", args=[pk])),
        ("post", reverse("chat:delete", args=[pk])),
        ("post", reverse("chat:rename", args=[pk])),
        ("post", reverse("chat:settings", args=[pk])),
        ("post", reverse("chat:upload_attachment", args=[pk])),
        ("get", reverse("chat:export", args=[pk])),
        ("post", reverse("chat:keep", args=[pk])),
        ("get", reverse("chat:attachment", args=[attachment.pk])),
        ("post", reverse("chat:delete_preset", args=[preset.pk])),
    ]


def test_it_hides_everything_from_an_outsider(outsider_client, owned):
    conversation, attachment, preset = owned
    for method, url in _urls(*owned):
        response = getattr(outsider_client, method)(url, {"title": "pwned"} if method == "post" else None)
        assert response.status_code == 404, url
    conversation.refresh_from_db()
    assert conversation.title == "Trip planning"
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    assert Preset.objects.filter(pk=preset.pk).exists()


def test_it_sends_anonymous_visitors_to_sign_in(client, owned):
    for method, url in _urls(*owned):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_it_lists_only_the_users_own_conversations(outsider_client, conversation):
    response = outsider_client.get(reverse("chat:index"))
    assert b"Trip planning" not in response.content
    assert b"No conversations yet" in response.content

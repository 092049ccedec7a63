"""Image uploads: checked by content, JSON answers for the page, and served back to the owner only."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chat.models import Attachment
from tests.chat_pages.conftest import tiny_png

pytestmark = pytest.mark.django_db


def _upload(client, conversation, name: str, data: bytes, content_type: str = "image/png"):
    file = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(reverse("chat:upload_attachment", args=[conversation.pk]), {"file": file})


def test_it_accepts_a_png(owner_client, trip):
    response = _upload(owner_client, trip, "dot.png", tiny_png())
    assert response.status_code == 200
    answer = response.json()
    stored = Attachment.objects.get(pk=answer["id"])
    assert (answer["name"], answer["size"], stored.mime) == ("dot.png", len(tiny_png()), "image/png")
    assert stored.conversation == trip


def test_it_rejects_a_file_that_only_claims_to_be_an_image(owner_client, trip):
    response = _upload(owner_client, trip, "evil.png", b"<svg onload=alert(1)>", "image/png")
    assert response.status_code == 400
    assert "PNG, JPEG, WebP, GIF" in response.json()["error"]
    assert not Attachment.objects.exists()


def test_it_asks_for_a_file(owner_client, trip):
    response = owner_client.post(reverse("chat:upload_attachment", args=[trip.pk]))
    assert response.status_code == 400


def test_it_rejects_get_for_upload(owner_client, trip):
    assert owner_client.get(reverse("chat:upload_attachment", args=[trip.pk])).status_code == 405


def test_it_serves_the_image_to_its_owner_with_the_checked_type(owner_client, outsider_client, trip):
    answer = _upload(owner_client, trip, "dot.gif.png", tiny_png()).json()
    response = owner_client.get(reverse("chat:attachment", args=[answer["id"]]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == tiny_png()
    assert outsider_client.get(reverse("chat:attachment", args=[answer["id"]])).status_code == 404

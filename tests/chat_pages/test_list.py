"""The conversation list: newest first, search over titles and message text, rename, delete."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Conversation
from chat.views import PAGE_SIZE
from tests.chat_pages.conftest import add_turn

pytestmark = pytest.mark.django_db


def test_it_shows_a_helpful_empty_state(owner_client, three_models):
    response = owner_client.get(reverse("chat:index"))
    assert response.status_code == 200
    assert b"No conversations yet" in response.content
    assert reverse("chat:new").encode() in response.content


def test_it_lists_newest_first(owner_client, owner, three_models):
    older = Conversation.objects.create(user=owner, title="Older", model="m")
    Conversation.objects.create(user=owner, title="Newer", model="m")
    older.save()  # touched last: most recent activity
    body = owner_client.get(reverse("chat:index")).content.decode()
    assert body.index("Older") < body.index("Newer")


def test_it_searches_titles_and_message_text(owner_client, owner, trip):
    other = Conversation.objects.create(user=owner, title="Recipes", model="m")
    add_turn(other, "How long to boil an egg?", "About nine minutes.")
    by_title = owner_client.get(reverse("chat:index"), {"q": "trip"}).content
    assert b"Trip planning" in by_title and b"Recipes" not in by_title
    by_text = owner_client.get(reverse("chat:index"), {"q": "NINE minutes"}).content
    assert b"Recipes" in by_text and b"Trip planning" not in by_text


def test_it_says_when_nothing_matches(owner_client, trip):
    body = owner_client.get(reverse("chat:index"), {"q": "zebra"}).content
    assert "Nothing matches “zebra”".encode() in body


def test_it_answers_htmx_searches_with_the_results_only(owner_client, trip):
    response = owner_client.get(reverse("chat:index"), {"q": "trip"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert 'id="results"' in body and "Trip planning" in body
    assert "<html" not in body


def test_it_leaves_compare_columns_out_of_the_list(owner_client, owner, three_models):
    import uuid

    Conversation.objects.create(user=owner, title="Column", model="m", compare_group=uuid.uuid4())
    assert b"Column" not in owner_client.get(reverse("chat:index")).content


def test_it_renames(owner_client, trip):
    response = owner_client.post(reverse("chat:rename", args=[trip.pk]), {"title": "  Lisbon in May "})
    assert response.status_code == 302
    trip.refresh_from_db()
    assert trip.title == "Lisbon in May"


def test_it_returns_to_the_list_after_renaming_there(owner_client, trip):
    response = owner_client.post(reverse("chat:rename", args=[trip.pk]), {"title": "X", "next": "list"})
    assert response["Location"] == reverse("chat:index")


def test_it_rejects_an_empty_title(owner_client, trip):
    response = owner_client.post(reverse("chat:rename", args=[trip.pk]), {"title": ""})
    assert response.status_code == 400


def test_it_rejects_get_for_rename(owner_client, trip):
    assert owner_client.get(reverse("chat:rename", args=[trip.pk])).status_code == 405


def test_it_asks_before_deleting(owner_client, trip):
    response = owner_client.get(reverse("chat:delete", args=[trip.pk]))
    assert response.status_code == 200
    assert b"This can't be undone." in response.content
    assert Conversation.objects.filter(pk=trip.pk).exists()


def test_it_deletes_on_post(owner_client, trip):
    response = owner_client.post(reverse("chat:delete", args=[trip.pk]))
    assert response["Location"] == reverse("chat:index")
    assert not Conversation.objects.filter(pk=trip.pk).exists()


def test_it_requires_csrf_for_state_changes(owner, trip):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(reverse("chat:delete", args=[trip.pk])).status_code == 403
    assert client.post(reverse("chat:rename", args=[trip.pk]), {"title": "x"}).status_code == 403
    assert Conversation.objects.filter(pk=trip.pk, title="Trip planning").exists()


def test_it_pages_long_lists(owner_client, owner, three_models):
    Conversation.objects.bulk_create(
        [Conversation(user=owner, title=f"Chat {i:03}", model="m") for i in range(PAGE_SIZE + 5)]
    )
    first = owner_client.get(reverse("chat:index")).content.decode()
    assert first.count('class="convo-item"') == PAGE_SIZE
    assert "Page 1 of 2" in first
    second = owner_client.get(reverse("chat:index"), {"page": 2}).content.decode()
    assert second.count('class="convo-item"') == 5


def test_it_rejects_get_for_every_state_change(owner_client, trip):
    from chat.models import Preset

    preset = Preset.objects.create(user=trip.user, name="P", model="orweb/auto")
    for url in (
        reverse("chat:keep", args=[trip.pk]),
        reverse("chat:save_preset"),
        reverse("chat:delete_preset", args=[preset.pk]),
    ):
        assert owner_client.get(url).status_code == 405, url
    assert Preset.objects.filter(pk=preset.pk).exists()


def test_it_answers_an_htmx_history_restore_with_the_whole_page(owner_client, trip):
    response = owner_client.get(
        reverse("chat:index"), {"q": "trip"}, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in response.content.decode()


def test_its_answer_varies_with_htmx(owner_client, trip):
    response = owner_client.get(reverse("chat:index"), headers={"HX-Request": "true"})
    assert {"HX-Request", "HX-History-Restore-Request"} <= {h.strip() for h in response["Vary"].split(",")}

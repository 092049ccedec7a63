"""Who may open what, page by page and download by download, from all four sides.

A member's things (conversations, images, presets, comparisons, API keys, own spend) are theirs alone:
a teammate, an outsider and staff alike get 404, as if the thing did not exist. The team's spend is
for staff: everyone else gets 403. Staff see what everyone spent, never what anyone wrote.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from freezegun import freeze_time

from billing.models import Budget, DailyPersonUsage, DailyUsage
from chat.models import Conversation, Preset
from gateway.keys import authenticate
from gateway.models import ApiKey
from tests.helpers.personas import PASSWORD, SIDES

pytestmark = pytest.mark.django_db

OWNER_ONLY = {"owner": 200, "teammate": 404, "outsider": 404, "staff": 404}
STAFF_ONLY = {"owner": 403, "teammate": 403, "outsider": 403, "staff": 200}
NOT_THE_OWNER = [side for side in SIDES if side != "owner"]
DAY = dt.date(2026, 11, 14)
SPENT = "$7.77"


@pytest.fixture(autouse=True)
def _mid_month():
    """Spend is summed by UTC day and month: noon mid-month keeps both still while a test runs."""
    with freeze_time(f"{DAY} 12:00:00", tick=True):
        yield


@pytest.fixture
def owner_spent(owner) -> None:
    DailyUsage.objects.create(
        day=DAY, user=owner, model="openai/gpt-4o-mini", source="chat", requests=1, cost=Decimal("7.77")
    )
    DailyPersonUsage.objects.create(day=DAY, user=owner, requests=1, cost=Decimal("7.77"))


def test_a_conversation_page_shows_only_to_its_owner(side, owned, side_client):
    response = side_client.get(reverse("chat:conversation", args=[owned.conversation.pk]))

    assert response.status_code == OWNER_ONLY[side]
    assert (owned.said in response.content.decode()) == (side == "owner")


def test_the_conversation_list_shows_only_the_users_own(side, owned, side_client):
    response = side_client.get(reverse("chat:index"))

    assert response.status_code == 200
    assert ("Vault plans" in response.content.decode()) == (side == "owner")


def test_a_conversation_downloads_only_for_its_owner(side, owned, side_client):
    client = side_client
    exported = client.get(reverse("chat:export", args=[owned.conversation.pk]))
    image = client.get(reverse("chat:attachment", args=[owned.attachment.pk]))

    assert (exported.status_code, image.status_code) == (OWNER_ONLY[side], OWNER_ONLY[side])
    assert (owned.said in exported.content.decode()) == (side == "owner")
    assert (image.content == bytes(owned.attachment.data)) == (side == "owner")


def _changes(owned) -> list[tuple[str, str]]:
    """Every way to change a member's conversation or preset (and a GET that must not delete)."""
    pk = owned.conversation.pk
    return [
        ("get", reverse("chat:delete", args=[pk])),
        ("post", reverse("chat:delete", args=[pk])),
        ("post", reverse("chat:rename", args=[pk])),
        ("post", reverse("chat:settings", args=[pk])),
        ("post", reverse("chat:upload_attachment", args=[pk])),
        ("post", reverse("chat:keep", args=[pk])),
        ("post", reverse("chat:delete_preset", args=[owned.preset.pk])),
    ]


def _unchanged(owned) -> bool:
    return (
        Conversation.objects.get(pk=owned.conversation.pk).title == "Vault plans"
        and Preset.objects.filter(pk=owned.preset.pk).exists()
    )


@pytest.mark.parametrize("side", NOT_THE_OWNER)
def test_nobody_else_changes_a_conversation(side, owned, side_client):
    for method, url in _changes(owned):
        response = getattr(side_client, method)(url, {"title": "pwned"} if method == "post" else None)
        assert response.status_code == 404, url

    assert _unchanged(owned)


def test_anonymous_visitors_are_sent_to_sign_in_before_any_change(owned, client):
    for method, url in _changes(owned):
        response = getattr(client, method)(url, {"title": "pwned"} if method == "post" else None)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url

    assert _unchanged(owned)


def test_a_preset_is_used_and_deleted_only_by_its_owner(side, owned, side_client):
    client = side_client
    used = client.get(reverse("chat:new"), {"preset": owned.preset.pk})
    deleted = client.post(reverse("chat:delete_preset", args=[owned.preset.pk]))

    assert used.status_code == OWNER_ONLY[side]
    assert (owned.said in used.content.decode()) == (side == "owner")
    assert deleted.status_code == (302 if side == "owner" else 404)
    assert Preset.objects.filter(pk=owned.preset.pk).exists() == (side != "owner")


def test_a_comparison_shows_only_to_its_owner(side, owned, side_client):
    response = side_client.get(reverse("chat:compare_view", args=[owned.compare_group]))

    assert response.status_code == OWNER_ONLY[side]
    assert (owned.compared in response.content.decode()) == (side == "owner")


def test_the_keys_page_lists_only_the_users_own_keys(side, owned, owner, side_client):
    prefix = ApiKey.objects.get(user=owner).prefix
    response = side_client.get(reverse("account:keys"))

    assert response.status_code == 200
    assert (prefix in response.content.decode()) == (side == "owner")


def test_a_key_is_revoked_only_by_its_owner_here(side, owned, owner, side_client):
    """Staff revoke other people's keys from the Django admin, not from these pages."""
    url = reverse("account:key_revoke", args=[ApiKey.objects.get(user=owner).pk])
    client = side_client

    assert client.get(url).status_code == OWNER_ONLY[side]
    assert client.post(url).status_code == (302 if side == "owner" else 404)
    assert (authenticate(owned.key_secret) is None) == (side == "owner")


def test_the_usage_page_shows_only_the_users_own_spend(side, owner_spent, side_client):
    response = side_client.get(reverse("account:usage"))

    assert response.status_code == 200
    assert (SPENT in response.content.decode()) == (side == "owner")


def test_the_team_page_and_its_csv_are_for_staff(side, owner_spent, side_client):
    client = side_client
    page = client.get(reverse("account:team"))
    sheet = client.get(reverse("account:team_csv"))

    assert (page.status_code, sheet.status_code) == (STAFF_ONLY[side], STAFF_ONLY[side])
    if side == "staff":
        assert "olivia" in page.content.decode() and SPENT in page.content.decode()
        assert "olivia,yes,7.77" in sheet.content.decode()


def test_only_staff_set_a_budget(side, owner, side_client):
    response = side_client.post(reverse("account:team_budget"), {"user": "olivia", "amount": "5", "period": "month"})

    assert response.status_code == (302 if side == "staff" else 403)
    assert Budget.objects.filter(user=owner).exists() == (side == "staff")


def test_every_member_browses_the_models(side, catalog, side_client):
    response = side_client.get(reverse("catalog:list"))

    assert response.status_code == 200
    assert "openai/gpt-4o-mini" in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(client, owned):
    pages = [
        reverse("chat:conversation", args=[owned.conversation.pk]),
        reverse("chat:export", args=[owned.conversation.pk]),
        reverse("chat:attachment", args=[owned.attachment.pk]),
        reverse("chat:compare_view", args=[owned.compare_group]),
        reverse("account:keys"),
        reverse("account:usage"),
        reverse("account:team"),
        reverse("account:team_csv"),
        reverse("catalog:list"),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_the_home_page_welcomes_visitors(client):
    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert reverse("login") in response.content.decode()


def test_the_home_page_sends_members_to_their_chats(side_client):
    response = side_client.get(reverse("home"))

    assert response.status_code == 302 and response["Location"] == reverse("chat:index")


def test_the_sign_in_page_signs_a_member_in(client, owner):
    assert 'name="password"' in client.get(reverse("login")).content.decode()

    response = client.post(reverse("login"), {"username": "olivia", "password": PASSWORD})

    assert response.status_code == 302
    assert client.get(reverse("account:usage")).status_code == 200

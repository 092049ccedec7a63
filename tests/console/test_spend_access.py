"""Who may see the console's spend pages and exports: staff only. Members (owner, teammate, outsider) get
403, anonymous visitors the sign-in page; revoking a key is POST only and needs the CSRF token."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from gateway.keys import create_key
from gateway.models import ApiKey
from tests.helpers.personas import SIDES

pytestmark = pytest.mark.django_db


@pytest.fixture
def pages(owner) -> dict[str, str]:
    return {
        "explorer": reverse("console:explorer"),
        "explorer csv": reverse("console:explorer_csv"),
        "rows csv": reverse("console:explorer_rows_csv"),
        "person": reverse("console:person", args=[owner.username]),
        "models": reverse("console:models"),
    }


@pytest.mark.parametrize("side", SIDES)
def test_every_page_and_export_is_for_staff_only(side, pages, request):
    client = request.getfixturevalue(f"{side}_client")
    expected = 200 if side == "staff" else 403
    got = {name: client.get(url).status_code for name, url in pages.items()}
    assert got == dict.fromkeys(pages, expected)


def test_anonymous_visitors_are_sent_to_sign_in(pages):
    for url in pages.values():
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("side", SIDES)
def test_only_staff_revoke_a_persons_key(side, owner, request):
    key, _ = create_key(owner, "laptop")
    client = request.getfixturevalue(f"{side}_client")
    response = client.post(reverse("console:revoke_key", args=[owner.username, key.pk]))
    key.refresh_from_db()
    assert (response.status_code, key.is_active) == ((302, False) if side == "staff" else (403, True))


def test_a_key_is_never_revoked_over_get(owner, staff_client):
    key, _ = create_key(owner, "laptop")
    response = staff_client.get(reverse("console:revoke_key", args=[owner.username, key.pk]))
    assert response.status_code == 405
    assert ApiKey.objects.get(pk=key.pk).is_active


def test_revoking_needs_the_csrf_token(owner, staff):
    key, _ = create_key(owner, "laptop")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(reverse("console:revoke_key", args=[owner.username, key.pk]))
    assert response.status_code == 403
    assert ApiKey.objects.get(pk=key.pk).is_active


def test_a_key_is_revoked_only_through_its_owners_page(owner, teammate, staff_client):
    key, _ = create_key(owner, "laptop")
    response = staff_client.post(reverse("console:revoke_key", args=[teammate.username, key.pk]))
    assert response.status_code == 404
    assert ApiKey.objects.get(pk=key.pk).is_active

"""The API keys pages: list, create (secret shown once), revoke with confirmation; POST + CSRF for changes."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.test import Client
from django.urls import reverse

from gateway.keys import authenticate
from gateway.models import ApiKey

pytestmark = pytest.mark.django_db

KEYS = reverse("account:keys")


def checking_csrf(user) -> Client:
    """A signed-in client that, like a browser, gets no pass on the CSRF check."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_it_requires_sign_in(owner_key):
    assert Client().get(KEYS).status_code == 302
    assert Client().post(KEYS, {"name": "x"}).status_code == 302
    assert ApiKey.objects.count() == 1


def test_it_lists_only_my_keys_by_prefix(owner_client, owner_key, outsider_key):
    page = owner_client.get(KEYS).content.decode()
    assert owner_key.key.prefix in page and owner_key.key.name in page
    assert outsider_key.key.prefix not in page
    assert owner_key.secret not in page


def test_creating_a_key_shows_the_secret_once(owner_client):
    client = owner_client
    created = client.post(KEYS, {"name": "ci runner"})
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    secret = created.context["secret"]
    assert secret in created.content.decode()
    assert authenticate(secret).name == "ci runner"
    assert secret not in client.get(KEYS).content.decode()


def test_creating_needs_a_csrf_token(owner, owner_key):
    assert checking_csrf(owner).post(KEYS, {"name": "x"}).status_code == 403
    assert ApiKey.objects.filter(user=owner).count() == 1


def test_revoke_asks_first_and_get_changes_nothing(owner_client, owner_key):
    page = owner_client.get(reverse("account:key_revoke", args=[owner_key.key.pk]))
    assert page.status_code == 200 and b"Revoke" in page.content
    assert ApiKey.objects.get(pk=owner_key.key.pk).revoked_at is None


def test_it_revokes_my_key_on_post(owner_client, owner_key):
    response = owner_client.post(reverse("account:key_revoke", args=[owner_key.key.pk]))
    assert response.status_code == 302
    assert authenticate(owner_key.secret) is None


def test_revoking_needs_a_csrf_token(owner, owner_key):
    response = checking_csrf(owner).post(reverse("account:key_revoke", args=[owner_key.key.pk]))
    assert response.status_code == 403
    assert authenticate(owner_key.secret) is not None


def test_someone_elses_key_is_not_found(owner_key, outsider_client):
    url = reverse("account:key_revoke", args=[owner_key.key.pk])
    assert outsider_client.get(url).status_code == 404
    assert outsider_client.post(url).status_code == 404
    assert authenticate(owner_key.secret) is not None


def test_admins_revoke_any_key_from_the_django_admin(owner_key, superuser_client):
    response = superuser_client.post(
        reverse("admin:gateway_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [owner_key.key.pk]},
    )
    assert response.status_code == 302
    assert authenticate(owner_key.secret) is None


def test_the_admin_never_shows_the_hash_and_cannot_add_keys(owner_key, superuser_client):
    model_admin = site._registry[ApiKey]
    page = superuser_client.get(reverse("admin:gateway_apikey_change", args=[owner_key.key.pk])).content.decode()
    assert owner_key.key.hashed_key not in page
    assert not model_admin.has_add_permission(None)


@pytest.mark.parametrize("name", ["ci\x00runner", "\x00"])
def test_a_key_name_with_nul_is_a_400_saying_why_and_makes_no_key(owner_client, name):
    response = owner_client.post(KEYS, {"name": name})

    assert response.status_code == 400
    assert "can&#x27;t contain a NUL character" in response.content.decode()
    assert not ApiKey.objects.exists()

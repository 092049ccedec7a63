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


def signed_in(persona, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(persona.user)
    return client


def test_it_requires_sign_in(owner):
    assert Client().get(KEYS).status_code == 302
    assert Client().post(KEYS, {"name": "x"}).status_code == 302
    assert ApiKey.objects.count() == 1


def test_it_lists_only_my_keys_by_prefix(owner, other):
    page = signed_in(owner).get(KEYS).content.decode()
    assert owner.key.prefix in page and owner.key.name in page
    assert other.key.prefix not in page
    assert owner.secret not in page


def test_creating_a_key_shows_the_secret_once(owner):
    client = signed_in(owner)
    created = client.post(KEYS, {"name": "ci runner"})
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    secret = created.context["secret"]
    assert secret in created.content.decode()
    assert authenticate(secret).name == "ci runner"
    assert secret not in client.get(KEYS).content.decode()


def test_creating_needs_a_csrf_token(owner):
    client = signed_in(owner, csrf=True)
    assert client.post(KEYS, {"name": "x"}).status_code == 403
    assert ApiKey.objects.filter(user=owner.user).count() == 1


def test_revoke_asks_first_and_get_changes_nothing(owner):
    page = signed_in(owner).get(reverse("account:key_revoke", args=[owner.key.pk]))
    assert page.status_code == 200 and b"Revoke" in page.content
    assert ApiKey.objects.get(pk=owner.key.pk).revoked_at is None


def test_it_revokes_my_key_on_post(owner):
    response = signed_in(owner).post(reverse("account:key_revoke", args=[owner.key.pk]))
    assert response.status_code == 302
    assert authenticate(owner.secret) is None


def test_revoking_needs_a_csrf_token(owner):
    response = signed_in(owner, csrf=True).post(reverse("account:key_revoke", args=[owner.key.pk]))
    assert response.status_code == 403
    assert authenticate(owner.secret) is not None


def test_someone_elses_key_is_not_found(owner, other):
    url = reverse("account:key_revoke", args=[owner.key.pk])
    assert signed_in(other).get(url).status_code == 404
    assert signed_in(other).post(url).status_code == 404
    assert authenticate(owner.secret) is not None


def test_admins_revoke_any_key_from_the_django_admin(owner, admin):
    response = signed_in(admin).post(
        reverse("admin:gateway_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [owner.key.pk]},
    )
    assert response.status_code == 302
    assert authenticate(owner.secret) is None


def test_the_admin_never_shows_the_hash_and_cannot_add_keys(owner, admin):
    model_admin = site._registry[ApiKey]
    page = signed_in(admin).get(reverse("admin:gateway_apikey_change", args=[owner.key.pk])).content.decode()
    assert owner.key.hashed_key not in page
    assert not model_admin.has_add_permission(None)

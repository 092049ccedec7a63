"""Single sign-on (orweb.sso) against a real OpenID provider process: people created on first sign-in,
groups and staff following the IdP's claims, matching by e-mail, and what is refused."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.test import Client

from billing.budgets import applicable_budgets
from billing.models import Budget
from gateway.models import GroupPolicy
from gateway.policy import policies_of
from orweb.sso import OIDCBackend
from tests.orweb.sso_provider import Provider, callback_path, oidc_provider, oidc_provider_server

__all__ = ["oidc_provider", "oidc_provider_server"]

pytestmark = pytest.mark.django_db

User = get_user_model()


def sso_sign_in(client: Client, provider: Provider, sub: str, next_path: str = "") -> httpx.Response:
    """The whole redirect dance: our /oidc/authenticate/, the IdP's authorize form, our callback."""
    start = client.get("/oidc/authenticate/" + (f"?next={next_path}" if next_path else ""))
    assert start.status_code == 302
    return client.get(callback_path(provider.approve(start["Location"], sub)))


def signed_in_user(client: Client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def group_names(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_a_first_sign_in_creates_the_person_with_the_idps_groups(oidc_provider):
    oidc_provider.person("u-1", email="alice@example.com", preferred_username="alice", groups=["research"])
    client = Client()

    done = sso_sign_in(client, oidc_provider, "u-1", next_path="/models/")

    assert done.status_code == 302 and done["Location"] == "/models/"
    alice = signed_in_user(client)
    assert (alice.username, alice.email) == ("alice", "alice@example.com")
    assert not alice.has_usable_password()
    assert group_names(alice) == {"research"}
    assert not alice.is_staff


def test_groups_follow_the_idp_at_every_sign_in_and_bring_their_policies_and_budgets(oidc_provider):
    research = Group.objects.create(name="research")
    GroupPolicy.objects.create(group=research, allowed_models=["openai/gpt-4o-mini"])
    budget = Budget.objects.create(group=research, limit_usd=Decimal("25"))
    oidc_provider.person("u-2", email="bo@example.com", groups=["research", "/sales"])
    client = Client()
    sso_sign_in(client, oidc_provider, "u-2")
    bo = signed_in_user(client)
    assert group_names(bo) == {"research", "sales"}
    assert [p.group.name for p in policies_of(bo)] == ["research"]
    assert applicable_budgets(bo) == [budget]

    oidc_provider.person("u-2", email="bo@example.com", groups=["sales"])
    sso_sign_in(Client(), oidc_provider, "u-2")

    assert group_names(bo) == {"sales"}
    assert policies_of(bo) == [] and applicable_budgets(bo) == []


def test_staff_follows_the_staff_group(oidc_provider):
    oidc_provider.person("u-3", email="cy@example.com", groups=["admins"])
    client = Client()
    sso_sign_in(client, oidc_provider, "u-3")
    cy = signed_in_user(client)
    assert cy.is_staff

    oidc_provider.person("u-3", email="cy@example.com", groups=[])
    sso_sign_in(Client(), oidc_provider, "u-3")
    cy.refresh_from_db()
    assert not cy.is_staff and group_names(cy) == set()


def test_a_superusers_staff_flag_is_never_taken_by_the_idp(oidc_provider):
    root = User.objects.create_superuser("root", email="root@example.com", password="break-glass-pw")
    oidc_provider.person("u-4", email="ROOT@example.com", groups=["research"])
    client = Client()
    sso_sign_in(client, oidc_provider, "u-4")
    assert signed_in_user(client) == root
    root.refresh_from_db()
    assert root.is_staff and root.is_superuser


def test_an_existing_person_is_matched_by_email_and_keeps_their_account(oidc_provider):
    dana = User.objects.create_user("dana", email="Dana@Example.com", password="old-password-1")
    oidc_provider.person("u-5", email="dana@example.com", given_name="Dana", family_name="Q")
    client = Client()
    sso_sign_in(client, oidc_provider, "u-5")
    assert signed_in_user(client) == dana
    dana.refresh_from_db()
    assert (dana.first_name, dana.last_name) == ("Dana", "Q")
    assert User.objects.count() == 1


def test_a_taken_username_gets_a_suffix(oidc_provider):
    User.objects.create_user("erin", email="erin@elsewhere.example")
    oidc_provider.person("u-6", email="erin@example.com", preferred_username="erin")
    client = Client()
    sso_sign_in(client, oidc_provider, "u-6")
    assert signed_in_user(client).username == "erin-2"


def test_there_is_no_cap_on_people(oidc_provider):
    for n in range(12):
        oidc_provider.person(f"many-{n}", email=f"person{n}@example.com")
        client = Client()
        sso_sign_in(client, oidc_provider, f"many-{n}")
        assert signed_in_user(client) is not None
    assert User.objects.count() == 12


@pytest.mark.parametrize("verified", [False, "false"])
def test_an_unverified_email_is_refused(oidc_provider, verified):
    oidc_provider.person("u-7", email="mallory@example.com", email_verified=verified)
    client = Client()
    done = sso_sign_in(client, oidc_provider, "u-7")
    assert done["Location"] == "/login/?sso=failed"
    assert signed_in_user(client) is None and not User.objects.exists()


def test_a_deactivated_person_cannot_sign_in(oidc_provider):
    User.objects.create_user("fay", email="fay@example.com", is_active=False)
    oidc_provider.person("u-8", email="fay@example.com")
    client = Client()
    assert sso_sign_in(client, oidc_provider, "u-8")["Location"] == "/login/?sso=failed"
    assert signed_in_user(client) is None


def _id_token_for(provider: Provider, client_id: str, nonce: str) -> str:
    """An ID token the provider signed for another application (`client_id`)."""
    redirect = "http://app.example/callback"
    query = httpx.QueryParams(
        response_type="code", client_id=client_id, redirect_uri=redirect, scope="openid email", nonce=nonce, state="s"
    )
    provider.person("u-9", email="gus@example.com")
    code = httpx.URL(provider.approve(f"{provider.issuer}/oauth2/authorize?{query}", "u-9")).params["code"]
    token = httpx.post(
        f"{provider.issuer}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": client_id,
            "client_secret": "s",
        },
        timeout=10,
    )
    token.raise_for_status()
    return token.json()["id_token"]


def test_an_id_token_issued_to_another_application_is_refused(oidc_provider, settings):
    id_token = _id_token_for(oidc_provider, "another-app", nonce="n-1")
    backend = OIDCBackend()
    backend.configure()
    with pytest.raises(SuspiciousOperation, match="another client"):
        backend.verify_token(id_token, nonce="n-1")

    settings.OIDC_RP_CLIENT_ID = "another-app"
    backend.configure()
    assert backend.verify_token(id_token, nonce="n-1")["email"] == "gus@example.com"

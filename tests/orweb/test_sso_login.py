"""The sign-in page with single sign-on: the button, the "SSO only" switch that hides the password form
and refuses passwords to all but superusers, the break-glass page, and what happens when the IdP is down."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.helpers.personas import PASSWORD, person, signed_in
from tests.orweb.sso_provider import oidc_provider, oidc_provider_server
from tests.orweb.test_sso import sso_sign_in

__all__ = ["oidc_provider", "oidc_provider_server"]

pytestmark = pytest.mark.django_db

BUTTON = "Sign in with Acme ID"
PASSWORD_FIELD = 'name="password"'


@pytest.fixture
def sso_only(oidc_provider, settings):
    settings.ORWEB_SSO_ONLY = True
    return oidc_provider


def password_sign_in(path: str, username: str, password: str = PASSWORD) -> Client:
    client = Client()
    client.response = client.post(path, {"username": username, "password": password})
    return client


def test_without_sso_the_page_is_the_password_form_and_oidc_is_not_found():
    page = Client().get("/login/").content.decode()
    assert PASSWORD_FIELD in page and "Sign in with" not in page
    assert Client().get("/oidc/authenticate/").status_code == 404


def test_with_sso_the_page_offers_both_and_the_button_keeps_next(oidc_provider):
    page = Client().get("/login/?next=/models/").content.decode()
    assert f'href="/oidc/authenticate/?next=/models/">{BUTTON}</a>' in page
    assert PASSWORD_FIELD in page


def test_sso_only_hides_the_password_form(sso_only):
    page = Client().get("/login/").content.decode()
    assert BUTTON in page and PASSWORD_FIELD not in page


def test_sso_only_refuses_passwords_to_everyone_but_superusers(sso_only):
    person("pat", email="pat@example.com", is_staff=True)
    for path in ("/login/", "/login/password/", "/admin/login/"):
        assert "_auth_user_id" not in password_sign_in(path, "pat").session


def test_the_break_glass_page_keeps_a_password_sign_in_for_superusers(sso_only):
    get_user_model().objects.create_superuser("root", email="root@example.com", password=PASSWORD)
    page = Client().get("/login/password/").content.decode()
    assert PASSWORD_FIELD in page and 'action="/login/password/"' in page
    assert "only administrators can sign in with a password" in page

    client = password_sign_in("/login/password/", "root")
    assert client.response.status_code == 302 and "_auth_user_id" in client.session


def test_sso_only_ends_password_sessions_but_not_sso_ones(sso_only, settings):
    settings.ORWEB_SSO_ONLY = False
    by_password = signed_in(person("quinn", email="quinn@example.com"))
    sso_only.person("u-q", email="rae@example.com")
    by_sso = Client()
    sso_sign_in(by_sso, sso_only, "u-q")
    settings.ORWEB_SSO_ONLY = True

    assert by_password.get("/models/").status_code == 302
    assert by_sso.get("/models/").status_code == 200


def test_a_failed_sign_in_says_so_on_the_login_page(oidc_provider):
    page = Client().get("/login/?sso=failed").content.decode()
    assert "Single sign-on didn't complete" in page


def test_an_unreachable_idp_sends_people_back_to_the_login_page(oidc_provider, settings):
    settings.ORWEB_OIDC_ISSUER = "http://127.0.0.1:9"
    response = Client().get("/oidc/authenticate/")
    assert response.status_code == 302 and response["Location"] == "/login/?sso=failed"
    assert "_auth_user_id" in password_sign_in("/login/", person("sid").username).session

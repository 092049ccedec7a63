"""Single sign-on in Chromium: a newcomer clicks "Sign in with Acme ID" on the sign-in page, signs in at a
real OpenID provider (oidc-provider-mock, its own process), and lands signed in on the page they asked
for, in the groups the IdP gave them; with SSO required, the page shows only the button."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.orweb.sso_provider import oidc_provider, oidc_provider_server

__all__ = ["oidc_provider", "oidc_provider_server"]

pytestmark = pytest.mark.browser


def _without_the_providers_stylesheet(tab) -> None:
    """The provider's page links a CDN stylesheet; there is no network here, and it is not ours to test."""
    tab.page.route(re.compile(r"^https://cdn\.jsdelivr\.net/"), lambda route: route.fulfill(status=200, body=""))


def test_a_newcomer_signs_in_with_the_identity_provider(new_tab, live_app, oidc_provider, catalog):
    oidc_provider.person("u-nina", email="nina@example.com", preferred_username="nina", groups=["research"])
    tab = new_tab()
    _without_the_providers_stylesheet(tab)

    tab.goto("/models/")
    expect(tab.page).to_have_url(re.compile(r"/login/\?next=/models/"))
    tab.screenshot("sso-login")
    tab.page.get_by_role("link", name="Sign in with Acme ID").click()

    expect(tab.page).to_have_url(re.compile(re.escape(oidc_provider.issuer) + "/oauth2/authorize"))
    tab.page.locator("input[name=sub]").fill("u-nina")
    tab.page.get_by_role("button", name="Authorize").click()

    expect(tab.page).to_have_url(live_app.url + "/models/")
    expect(tab.page.locator(".topbar")).to_contain_text("nina")
    nina = get_user_model().objects.get(username="nina")
    assert list(nina.groups.values_list("name", flat=True)) == ["research"]
    assert not nina.has_usable_password()


def test_with_sso_required_the_page_shows_only_the_button(new_tab, live_app, oidc_provider, settings):
    settings.ORWEB_SSO_ONLY = True
    tab = new_tab()
    tab.goto("/login/")
    expect(tab.page.get_by_role("link", name="Sign in with Acme ID")).to_be_visible()
    expect(tab.page.locator("input[name=password]")).to_have_count(0)
    tab.screenshot("sso-only-login")

    tab.goto("/login/password/")
    expect(tab.page.locator("input[name=password]")).to_be_visible()

"""/v1 skips the page middleware (orweb.middleware.pages_only): the host check and the security
headers still apply, the cookie middleware doesn't, and every other path keeps the full stack."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_answers_with_the_security_headers_and_no_cookies(live_app, catalog, owner_key):
    response = httpx.get(live_app.url + "/v1/models", headers={"Authorization": f"Bearer {owner_key.secret}"})
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "set-cookie" not in response.headers
    assert "X-Frame-Options" not in response.headers
    assert "Content-Security-Policy" not in response.headers


def test_it_refuses_a_host_that_is_not_allowed(live_app, catalog, owner_key):
    response = httpx.get(
        live_app.url + "/v1/models", headers={"Authorization": f"Bearer {owner_key.secret}", "Host": "evil.example"}
    )
    assert response.status_code == 400


def test_it_ignores_a_session_cookie(live_app, catalog, owner_client):
    cookie = owner_client.cookies["sessionid"].value
    response = httpx.get(live_app.url + "/v1/models", cookies={"sessionid": cookie})
    assert response.status_code == 401


def test_other_paths_keep_the_full_middleware_stack(live_app, catalog):
    response = httpx.get(live_app.url + "/login/")
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "csrftoken" in response.headers.get("set-cookie", "")


def test_pages_keep_csp_and_static_files_through_the_async_server(live_app):
    page = httpx.get(live_app.url + "/login/")
    assert "default-src" in page.headers["Content-Security-Policy"]
    static = httpx.get(live_app.url + "/static/orweb/app.css")
    assert static.status_code == 200
    assert static.headers["content-type"].startswith("text/css")

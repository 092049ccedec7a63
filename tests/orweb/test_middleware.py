"""The page middleware (orweb.middleware.pages_only) runs for pages, sync and async, and not for /v1."""

from __future__ import annotations

import pytest
from django.test import AsyncClient, Client

from tests.helpers.personas import PASSWORD

pytestmark = pytest.mark.django_db


def test_the_admin_works_behind_the_wrapped_middleware(superuser):
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/admin/login/")
    token = login_page.cookies["csrftoken"].value
    form = {"username": superuser.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    logged_in = client.post("/admin/login/?next=/admin/", form)
    assert logged_in.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_page_post_without_a_csrf_token_is_refused(owner):
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": owner.username, "password": PASSWORD})
    assert response.status_code == 403


async def test_pages_get_their_headers_and_api_paths_do_not():
    client = AsyncClient()
    page = await client.get("/login/")
    api = await client.get("/v1/models")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in page.headers
    assert api.status_code == 401
    assert "X-Frame-Options" not in api.headers
    assert "Content-Security-Policy" not in api.headers
    assert api.headers["X-Content-Type-Options"] == "nosniff"


def test_a_host_not_allowed_is_refused_on_api_paths_too():
    assert Client().get("/v1/models", HTTP_HOST="evil.example").status_code == 400


def test_in_an_async_server_api_requests_pay_no_thread_hop_for_page_hooks(rf):
    """Django runs a sync process_view in a thread for every request; ours are coroutines in async mode,
    and return at once for /v1."""
    from asgiref.sync import async_to_sync, iscoroutinefunction

    from orweb.middleware import Csrf

    async def view(request):
        return None

    middleware = Csrf(view)
    assert iscoroutinefunction(middleware.process_view)
    assert async_to_sync(middleware.process_view)(rf.get("/v1/models"), view, (), {}) is None
    assert not hasattr(Csrf(lambda request: None), "process_template_response")

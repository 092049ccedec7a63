"""The websocket origin check (orweb.websocket_origin): only a page of this very site, port included, may
open a socket with the user's session cookie; Channels' host-name check let any port of the host in."""

from __future__ import annotations

import pytest
import websockets
from django.conf import settings

from chat.models import Conversation
from orweb.websocket_origin import same_origin


def scope(origin: str | None, host: str | None = "orweb.example:8000", **extra) -> dict:
    headers = [(b"origin", origin.encode())] if origin is not None else []
    headers += [(b"host", host.encode())] if host is not None else []
    return {"type": "websocket", "scheme": "ws", "headers": headers, **extra}


@pytest.fixture(autouse=True)
def _hosts(settings) -> None:
    settings.ALLOWED_HOSTS = ["orweb.example"]
    settings.CSRF_TRUSTED_ORIGINS = []


def test_a_page_of_the_same_scheme_host_and_port_may_open_a_socket():
    assert same_origin(scope("http://orweb.example:8000"))


def test_a_page_on_another_port_of_the_same_host_may_not():
    assert not same_origin(scope("http://orweb.example:3000"))
    assert not same_origin(scope("http://orweb.example"))


def test_another_host_or_scheme_may_not():
    assert not same_origin(scope("http://evil.example:8000"))
    assert not same_origin(scope("https://orweb.example:8000"))


def test_a_host_not_allowed_is_refused_even_when_origin_matches():
    assert not same_origin(scope("http://other.example:8000", host="other.example:8000"))


def test_a_handshake_without_origin_or_host_or_with_two_origins_is_refused():
    assert not same_origin(scope(None))
    assert not same_origin(scope("http://orweb.example:8000", host=None))
    twice = scope("http://orweb.example:8000")
    twice["headers"].append((b"origin", b"http://evil.example"))
    assert not same_origin(twice)


def test_over_tls_the_page_is_https():
    assert same_origin(scope("https://orweb.example", host="orweb.example", scheme="wss"))
    assert not same_origin(scope("http://orweb.example", host="orweb.example", scheme="wss"))


def test_behind_a_proxy_its_header_says_the_page_is_https(settings):
    proxied = scope("https://orweb.example", host="orweb.example")
    proxied["headers"].append((b"x-forwarded-proto", b"https"))
    assert not same_origin(proxied)

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert same_origin(proxied)
    assert not same_origin(scope("https://orweb.example", host="orweb.example"))


def test_a_trusted_origin_may_open_a_socket(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://Chat.Example.com"]
    assert same_origin(scope("https://chat.example.com"))


async def _handshake(url: str, cookie: str, origin: str) -> int | None:
    """None when the socket opened, else the HTTP status the handshake was refused with."""
    try:
        async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": origin}):
            return None
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.django_db(transaction=True)
async def test_the_app_opens_sockets_only_to_its_own_origin_port_included(live_app, owner, owner_client):
    conversation = await Conversation.objects.acreate(user=owner, title="t", model="openai/gpt-4o-mini")
    port = live_app.url.rsplit(":", 1)[1]
    url = f"{live_app.ws_url}/ws/chat/{conversation.pk}/"
    cookie = f"{settings.SESSION_COOKIE_NAME}={owner_client.cookies[settings.SESSION_COOKIE_NAME].value}"

    assert await _handshake(url, cookie, live_app.url) is None
    assert await _handshake(url, cookie, f"http://127.0.0.1:{int(port) + 1}") == 403
    assert await _handshake(url, cookie, "http://localhost:" + port) == 403

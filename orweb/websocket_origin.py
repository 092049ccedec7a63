"""The websocket origin check: a socket opens only from a page of this very site.

The Origin header's scheme, host and port must be those the socket was opened to (its Host header, which
must also be in ALLOWED_HOSTS), the comparison Django's CSRF check makes for a form's Origin; or it must be
one of CSRF_TRUSTED_ORIGINS. Channels' AllowedHostsOriginValidator compares host names only, so a page on
another port of an allowed host (any other local server on localhost:3000) could open sockets here with
the user's session cookie, which browsers send to every port of a host.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


class SameOriginValidator:
    """ASGI middleware for websockets: denies the handshake unless `same_origin(scope)`."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator is for websocket connections only")
        if same_origin(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier.as_asgi()(scope, receive, send)


def _header(scope: dict, name: bytes) -> str | None:
    """The one value of a header; None when it is missing or repeated."""
    values = [value for key, value in scope.get("headers", []) if key.lower() == name]
    return values[0].decode("latin-1").strip().lower() if len(values) == 1 else None


def _scheme(scope: dict) -> str:
    """The page scheme a same-origin socket comes from: https for wss, or when the proxy named by
    SECURE_PROXY_SSL_HEADER says so (as Django's request.is_secure())."""
    if scope.get("scheme") in ("wss", "https"):
        return "https"
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        value = _header(scope, name.removeprefix("HTTP_").lower().replace("_", "-").encode())
        if value is not None and value.split(",", 1)[0].strip() == secure_value:
            return "https"
    return "http"


def same_origin(scope: dict) -> bool:
    """True when the handshake's Origin is this site's own (scheme, host and port) or a trusted origin."""
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if not origin or not host:
        return False
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (DEBUG_HOSTS if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return False
    trusted = {trusted.lower() for trusted in settings.CSRF_TRUSTED_ORIGINS}
    return origin == f"{_scheme(scope)}://{host}" or origin in trusted

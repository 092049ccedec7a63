"""ASGI entry point: HTTP through Django, websockets through Channels with session auth.

The /v1 API gets a lean Django handler of its own (`ApiHandler`); every other path goes through the full
middleware stack.
"""

from __future__ import annotations

import gc
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402
from django.http import HttpRequest, HttpResponseBase  # noqa: E402
from django.middleware.security import SecurityMiddleware  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402

API_PREFIX = "/v1/"


class ApiHandler(ASGIHandler):
    """Django for /v1 only: Bearer keys, JSON and SSE, no cookies, no pages.

    Sessions, auth, messages, CSRF, static files and the HTML headers (frame options, CSP) have nothing to
    do there, and under an async server each middleware costs two thread hops per request (MiddlewareMixin
    runs its hooks through sync_to_async); together ~1 ms before the view. What does apply runs inline:
    the ALLOWED_HOSTS check and SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer policy), whose
    hooks do no I/O. No view under /v1 reads a session, so CSRF has nothing to protect there; one that
    did would find no `request.user` and fail, not run unprotected.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        view = convert_exception_to_response(self._get_response_async)
        security = SecurityMiddleware(view)

        async def chain(request: HttpRequest) -> HttpResponseBase:
            request.get_host()
            response = security.process_request(request) or await view(request)
            return security.process_response(request, response)

        self._middleware_chain = convert_exception_to_response(chain)


api_asgi_app = ApiHandler()


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    app = api_asgi_app if scope["path"].startswith(API_PREFIX) else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far (Django, the apps, the servers' modules) lives as long as the process: keep it
# out of the collector's full passes. Without this each full pass walked it all and stopped the event
# loop for 50-100 ms, a stall every stream in the process felt at once; measured with it: 20-40 ms.
gc.freeze()

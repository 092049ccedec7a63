"""The middleware of pages, kept off /v1.

/v1 takes Bearer keys and answers JSON and SSE: sessions, auth, messages, CSRF, static files and the HTML
headers (frame options, CSP) have nothing to do there, and under an async server each of them costs two
thread hops per request (MiddlewareMixin runs its hooks through sync_to_async): ~1 ms before the view.
So every request gets SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer policy) and
`check_host`; the rest of settings.MIDDLEWARE is each wrapped by `pages_only`, which passes /v1 requests
straight on. No view under /v1 reads a session, so CSRF has nothing to protect there; one that did would
find no `request.user` and fail, not run unprotected.

Built from Django's documented middleware protocol only (factories, `sync_capable`/`async_capable`,
the process_* hooks) and asgiref's adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware
from django.utils.module_loading import import_string

API_PREFIX = "/v1/"
HOOKS = ("process_view", "process_template_response", "process_exception")


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


@sync_and_async_middleware
def check_host(get_response: Callable[..., Any]) -> Callable[..., Any]:
    """The ALLOWED_HOSTS check for every request (for pages CommonMiddleware also makes it; /v1 skips that)."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            request.get_host()
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponseBase:
            request.get_host()
            return get_response(request)

    return middleware


def _skipping_api(hook: Callable[..., Any], *, asynchronous: bool) -> Callable[..., Any]:
    """A middleware hook (process_view, ...) that does nothing for /v1 requests."""
    if asynchronous:
        run = hook if iscoroutinefunction(hook) else sync_to_async(hook, thread_sensitive=True)

        async def async_call(request: HttpRequest, *args: Any) -> Any:
            return None if is_api(request) else await run(request, *args)

        return async_call

    def call(request: HttpRequest, *args: Any) -> Any:
        return None if is_api(request) else hook(request, *args)

    return call


def pages_only(path: str) -> type:
    """The middleware at `path`, run for every request but /v1's.

    The wrapper runs sync or async, whatever the wrapped one can, so a /v1 request never pays for the
    thread hop a sync-only middleware (WhiteNoise) would cost it; pages adapt to it as Django would
    (every page middleware here can run sync, as Django's test client runs them)."""
    inner_factory = import_string(path)
    inner_async = getattr(inner_factory, "async_capable", False)

    class PagesOnly:
        sync_capable = True
        async_capable = True

        def __init__(self, get_response: Callable[..., Any]) -> None:
            self.get_response = get_response
            self.is_async = iscoroutinefunction(get_response)
            if self.is_async and not inner_async:
                self.instance = inner_factory(async_to_sync(get_response))
                self.inner = sync_to_async(self.instance, thread_sensitive=True)
            else:
                self.instance = self.inner = inner_factory(get_response)
            if self.is_async:
                markcoroutinefunction(self)
            for name in HOOKS:
                if hasattr(self.instance, name):
                    # Django runs process_exception sync whatever the mode; the other hooks in the
                    # handler's mode, so in an async server a coroutine here costs /v1 no thread hop.
                    asynchronous = self.is_async and name != "process_exception"
                    setattr(self, name, _skipping_api(getattr(self.instance, name), asynchronous=asynchronous))

        def __call__(self, request: HttpRequest) -> Any:
            if self.is_async:
                return self._acall(request)
            return self.get_response(request) if is_api(request) else self.inner(request)

        async def _acall(self, request: HttpRequest) -> HttpResponseBase:
            if is_api(request):
                return await self.get_response(request)
            return await self.inner(request)

    PagesOnly.__name__ = PagesOnly.__qualname__ = f"PagesOnly[{inner_factory.__name__}]"
    return PagesOnly


WhiteNoise = pages_only("whitenoise.middleware.WhiteNoiseMiddleware")
Sessions = pages_only("django.contrib.sessions.middleware.SessionMiddleware")
Common = pages_only("django.middleware.common.CommonMiddleware")
Csrf = pages_only("django.middleware.csrf.CsrfViewMiddleware")
Authentication = pages_only("django.contrib.auth.middleware.AuthenticationMiddleware")
Messages = pages_only("django.contrib.messages.middleware.MessageMiddleware")
FrameOptions = pages_only("django.middleware.clickjacking.XFrameOptionsMiddleware")
Htmx = pages_only("django_htmx.middleware.HtmxMiddleware")
Csp = pages_only("csp.middleware.CSPMiddleware")

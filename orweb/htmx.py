"""The htmx habits every page view shares (django-htmx): a typed request, and when to answer with a
page's partial only."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def wants_partial(request: HtmxHttpRequest) -> bool:
    """Whether to answer with the page's htmx region only: an htmx request, but not htmx restoring a page
    missing from its history cache (that needs the whole page). Views that switch on this vary on
    HX-Request and HX-History-Restore-Request."""
    return bool(request.htmx) and not request.htmx.history_restore_request

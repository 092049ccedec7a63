"""Template context shared by every page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    return {"simulated_upstream": settings.OPENROUTER_SIMULATED, "app_title": settings.ORWEB_APP_TITLE}

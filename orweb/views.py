"""Project-level pages: home and health."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from orweb.health import run_checks


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat:index")
    return render(request, "home.html")


@never_cache
async def health(request: HttpRequest) -> JsonResponse:
    """200 when database, Redis and upstream answer; 503 naming what is down."""
    checks = await run_checks()
    down = [name for name, state in checks.items() if state != "ok"]
    status = 503 if down else 200
    return JsonResponse({"status": "down" if down else "ok", "down": down, "checks": checks}, status=status)

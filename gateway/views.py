"""The API-keys pages under /account/: create, list and revoke personal keys. Transport only; the keys'
rules are in `gateway.keys`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from gateway.keys import create_key, revoke
from gateway.models import ApiKey
from orweb.text import refusal, storable

NAME_MAX = ApiKey._meta.get_field("name").max_length


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    """GET lists the user's keys; POST creates one and shows its secret, this once only (a name PostgreSQL
    can't store is a 400 over the list, saying why)."""
    status = 200
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if len(name) > NAME_MAX:
            messages.error(request, f"A key name can be at most {NAME_MAX} characters.")
            return redirect("account:keys")
        if storable(name):
            key, secret = create_key(request.user, name)
            return render(request, "gateway/key_created.html", {"key": key, "secret": secret})
        messages.error(request, refusal("A key name"))
        status = 400
    user_keys = ApiKey.objects.filter(user=request.user).order_by("revoked_at", "-created")
    return render(request, "gateway/keys.html", {"keys": user_keys, "name_max": NAME_MAX}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    """GET asks for confirmation, POST revokes. Only the owner's own keys: anyone else's is a 404 here
    (admins revoke other people's keys from the Django admin)."""
    key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    if request.method == "GET":
        return render(request, "gateway/key_revoke.html", {"key": key})
    if revoke(key, request.user):
        messages.success(request, f"Revoked {key}. Scripts using it now get 401.")
    return redirect("account:keys")

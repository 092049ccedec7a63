"""Account pages: personal API keys (create, list, revoke), what the user has spent, and for staff what
the whole team has spent (page and CSV). Transport only."""

from __future__ import annotations

import csv
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.budgets import today
from gateway.account import apply_person_budget, model_spend, team_csv_rows, team_spend, usage_summary
from gateway.forms import PersonBudgetForm
from gateway.keys import create_key, revoke
from gateway.models import ApiKey

NAME_MAX = ApiKey._meta.get_field("name").max_length


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    """GET lists the user's keys; POST creates one and shows its secret, this once only."""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if len(name) > NAME_MAX:
            messages.error(request, f"A key name can be at most {NAME_MAX} characters.")
            return redirect("account:keys")
        key, secret = create_key(request.user, name)
        return render(request, "gateway/key_created.html", {"key": key, "secret": secret})
    user_keys = ApiKey.objects.filter(user=request.user).order_by("revoked_at", "-created")
    return render(request, "gateway/keys.html", {"keys": user_keys, "name_max": NAME_MAX})


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


@login_required
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    return render(request, "gateway/usage.html", {"summary": usage_summary(request.user)})


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only staff see the whole team's spend.")


def _team_page(request: HttpRequest, form: PersonBudgetForm, status: int = 200) -> HttpResponse:
    lines = team_spend()
    total = sum((line.this_month for line in lines), start=Decimal(0))
    context = {"lines": lines, "total": total, "models": model_spend(), "form": form}
    return render(request, "gateway/team.html", context, status=status)


@login_required
@require_GET
def team(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    return _team_page(request, PersonBudgetForm())


@login_required
@require_POST
def team_budget(request: HttpRequest) -> HttpResponse:
    """Set, change or (with no amount) remove one person's own budget."""
    _staff_only(request)
    form = PersonBudgetForm(request.POST)
    if not form.is_valid():
        return _team_page(request, form, status=400)
    data = form.cleaned_data
    messages.success(request, apply_person_budget(request.user, data["user"], data["amount"], data["period"]))
    return redirect("account:team")


@login_required
@require_GET
def team_csv(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="orweb-spend-{today():%Y-%m}.csv"'
    csv.writer(response).writerows(team_csv_rows(team_spend()))
    return response

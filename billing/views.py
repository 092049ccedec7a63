"""Spend pages under /account/: what the user has spent and may still spend (with the cap they may set on
themselves), and for staff what the whole team has spent (page and CSV) with a form to set a person's
budget. Transport only: the sums are in `billing.reports`, the budget changes in `billing.forms`."""

from __future__ import annotations

import csv
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from billing.alerts_banners import dismiss
from billing.books import recent_books
from billing.budgets import today
from billing.caps import admin_ceiling, own_cap, remove_own_cap
from billing.forms import OwnCapForm, PersonBudgetForm
from billing.models import Period
from billing.reports import model_spend, team_csv_rows, team_spend, usage_summary
from billing.signals import usage_page_sections


def _usage_page(request: HttpRequest, cap_form: OwnCapForm | None = None, status: int = 200) -> HttpResponse:
    cap = own_cap(request.user)
    if cap_form is None:
        initial = {"amount": f"{cap.limit_usd.normalize():f}", "period": cap.period} if cap else None
        cap_form = OwnCapForm(request.user, initial=initial)
    summary = usage_summary(request.user)
    period = cap.period if cap else Period.MONTH
    ceiling = admin_ceiling(request.user, period)
    context = {
        "summary": summary,
        "cap": cap,
        "cap_status": next((budget for budget in summary.budgets if budget.own), None),
        "cap_form": cap_form,
        "ceiling": ceiling.explain(period) if ceiling else None,
        "sections": [html for _, html in usage_page_sections.send(sender=None, request=request) if html],
    }
    return render(request, "billing/usage.html", context, status=status)


@login_required
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    return _usage_page(request)


@login_required
@require_POST
def set_cap(request: HttpRequest) -> HttpResponse:
    """Set or change the signed-in person's own cap: always theirs, there is no one else's to name."""
    form = OwnCapForm(request.user, request.POST)
    if not form.is_valid():
        return _usage_page(request, form, status=400)
    messages.success(request, form.save())
    return redirect("account:usage")


@login_required
@require_POST
def remove_cap(request: HttpRequest) -> HttpResponse:
    """Remove the signed-in person's own cap (the admins' budgets still apply)."""
    removed = remove_own_cap(request.user)
    messages.success(request, "Removed your own cap." if removed else "You had no cap of your own.")
    return redirect("account:usage")


@login_required
@require_POST
def dismiss_alert(request: HttpRequest, banner_id: int) -> HttpResponse:
    """Hide one of the person's budget alert banners (someone else's is a 404), then back where they were."""
    dismiss(request.user, banner_id)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("account:usage")
    return redirect(back)


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only staff see the whole team's spend.")


def _team_page(request: HttpRequest, form: PersonBudgetForm, status: int = 200) -> HttpResponse:
    lines = team_spend()
    total = sum((line.this_month for line in lines), start=Decimal(0))
    context = {"lines": lines, "total": total, "models": model_spend(), "form": form, "books": recent_books()}
    return render(request, "billing/team.html", context, status=status)


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
    messages.success(request, form.save(request.user))
    return redirect("account:team")


@login_required
@require_GET
def team_csv(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="orweb-spend-{today():%Y-%m}.csv"'
    csv.writer(response).writerows(team_csv_rows(team_spend()))
    return response

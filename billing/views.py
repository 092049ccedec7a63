"""Spend pages under /account/: what the user has spent and may still spend, and for staff what the whole
team has spent (page and CSV) with a form to set a person's budget. Transport only: the sums are in
`billing.reports`, the budget change in `billing.forms`."""

from __future__ import annotations

import csv
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.books import recent_books
from billing.budgets import today
from billing.forms import PersonBudgetForm
from billing.reports import model_spend, team_csv_rows, team_spend, usage_summary


@login_required
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/usage.html", {"summary": usage_summary(request.user)})


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

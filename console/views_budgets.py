"""The budgets page: every budget of people and groups, edited inline. Transport only."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.models import Budget
from console.budgets import budget_rows
from console.forms_people import BudgetForm, NewBudgetForm, budget_initial
from console.groups import change_budget
from console.permissions import staff_required


def _owner(budget: Budget) -> tuple[dict[str, Any], str]:
    if budget.user_id:
        return {"user": budget.user}, f"person {budget.user.get_username()}"
    return {"group": budget.group}, f"group {budget.group.name}"


def _budgets_page(
    request: HttpRequest, status: int = 200, new_form: NewBudgetForm | None = None, failed: Any = None
) -> HttpResponse:
    rows = budget_rows()
    forms_by_budget = {
        row.budget.pk: (
            failed[1]
            if failed and failed[0] == row.budget.pk
            else BudgetForm(initial=budget_initial(row.budget), auto_id=f"b{row.budget.pk}-%s")
        )
        for row in rows
    }
    context = {
        "rows": [(row, forms_by_budget[row.budget.pk]) for row in rows],
        "new_form": new_form or NewBudgetForm(),
    }
    return render(request, "console/budgets.html", context, status=status)


@staff_required
@require_GET
def budgets(request: HttpRequest) -> HttpResponse:
    return _budgets_page(request)


@staff_required
@require_POST
def budget_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change one budget in place (an empty limit removes it)."""
    budget = get_object_or_404(Budget.objects.filter(person=None).select_related("user", "group"), pk=pk)
    form = BudgetForm(request.POST, auto_id=f"b{pk}-%s")
    if not form.is_valid():
        return _budgets_page(request, status=400, failed=(pk, form))
    owner, label = _owner(budget)
    change_budget(request.user, owner, label, **form.cleaned_data)
    messages.success(request, f"Saved the budget of {label}.")
    return redirect("console:budgets")


@staff_required
@require_POST
def budget_create(request: HttpRequest) -> HttpResponse:
    form = NewBudgetForm(request.POST)
    if not form.is_valid():
        return _budgets_page(request, status=400, new_form=form)
    data = form.cleaned_data
    if data["person"] is not None:
        owner, label = {"user": data["person"]}, f"person {data['person'].get_username()}"
    else:
        owner, label = {"group": data["group"]}, f"group {data['group'].name}"
    change_budget(request.user, owner, label, data["amount"], data["period"], data["alert_percent"])
    messages.success(request, f"Saved the budget of {label}.")
    return redirect("console:budgets")

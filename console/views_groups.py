"""Group pages: the list (and a new group), and one group's members, model access, rate limits and budget
on a single page. Transport only: changes are console.groups'."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import Group
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.models import Budget, RateLimit
from catalog.models import CatalogModel
from console import groups
from console.forms_people import (
    AccessRulesForm,
    AddMembersForm,
    AddModelsForm,
    BudgetForm,
    GroupForm,
    RateLimitForm,
    RemoveModelsForm,
    budget_initial,
    limit_initial,
)
from console.permissions import staff_required

SEARCH_RESULTS = 50


@staff_required
@require_GET
def group_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request, GroupForm())


def _list_page(request: HttpRequest, form: GroupForm, status: int = 200) -> HttpResponse:
    rows = Group.objects.annotate(members=Count("user")).select_related("model_policy", "budget").order_by("name")
    return render(request, "console/groups.html", {"groups": rows, "form": form}, status=status)


@staff_required
@require_POST
def group_create(request: HttpRequest) -> HttpResponse:
    form = GroupForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    group = groups.create_group(request.user, form.cleaned_data["name"])
    messages.success(request, f"Created the group {group.name}.")
    return redirect("console:group", pk=group.pk)


def _search(query: str) -> list[CatalogModel]:
    rows = CatalogModel.objects.filter(is_available=True).order_by("id")
    if query:
        rows = rows.filter(Q(id__icontains=query) | Q(name__icontains=query))
    return list(rows[:SEARCH_RESULTS])


def _group_page(request: HttpRequest, group: Group, status: int = 200, **forms: Any) -> HttpResponse:
    policy = groups.policy_of(group)
    budget = Budget.objects.filter(group=group).first()
    query = request.GET.get("q", "").strip()
    chosen = list(policy.allowed_models) if policy else []
    rules_initial = {"restrict": policy is not None}
    if policy is not None:
        rules_initial |= {
            "allow_by_rule": policy.allow_by_rule,
            "max_price_per_million": policy.max_price_per_million,
            "required_capabilities": policy.required_capabilities,
        }
    context = {
        "group": group,
        "members": group.user_set.order_by("username"),
        "policy": policy,
        "allowed_now": groups.allowed_now(policy),
        "chosen": sorted(chosen),
        "q": query,
        "results": _search(query),
        "members_form": forms.get("members_form") or AddMembersForm(),
        "rules_form": forms.get("rules_form") or AccessRulesForm(initial=rules_initial),
        "add_form": forms.get("add_form") or AddModelsForm(),
        "remove_form": forms.get("remove_form") or RemoveModelsForm(chosen),
        "limit_form": forms.get("limit_form")
        or RateLimitForm(initial=limit_initial(RateLimit.objects.filter(group=group).first())),
        "budget_form": forms.get("budget_form") or BudgetForm(initial=budget_initial(budget)),
        "budget": budget,
    }
    return render(request, "console/group.html", context, status=status)


def _group(pk: int) -> Group:
    return get_object_or_404(Group, pk=pk)


def _saved(request: HttpRequest, group: Group, what: str) -> HttpResponse:
    messages.success(request, f"Saved {group.name}'s {what}.")
    return redirect("console:group", pk=group.pk)


@staff_required
@require_GET
def group_page(request: HttpRequest, pk: int) -> HttpResponse:
    return _group_page(request, _group(pk))


@staff_required
@require_POST
def group_members_add(request: HttpRequest, pk: int) -> HttpResponse:
    group = _group(pk)
    form = AddMembersForm(request.POST)
    if not form.is_valid():
        return _group_page(request, group, status=400, members_form=form)
    groups.add_members(request.user, group, [form.cleaned_data["username"]])
    return _saved(request, group, "members")


@staff_required
@require_POST
def group_member_remove(request: HttpRequest, pk: int, user_pk: int) -> HttpResponse:
    group = _group(pk)
    member = get_object_or_404(group.user_set, pk=user_pk)
    groups.remove_member(request.user, group, member)
    return _saved(request, group, "members")


@staff_required
@require_POST
def group_access_rules(request: HttpRequest, pk: int) -> HttpResponse:
    group = _group(pk)
    form = AccessRulesForm(request.POST)
    if not form.is_valid():
        return _group_page(request, group, status=400, rules_form=form)
    groups.set_rules(request.user, group, **form.cleaned_data)
    return _saved(request, group, "model access")


@staff_required
@require_POST
def group_access_add(request: HttpRequest, pk: int) -> HttpResponse:
    group = _group(pk)
    form = AddModelsForm(request.POST)
    if not form.is_valid():
        return _group_page(request, group, status=400, add_form=form)
    added = groups.add_models(request.user, group, form.cleaned_data["models"], form.cleaned_data["providers"])
    messages.success(request, f"Allowed {added} more model(s) for {group.name}.")
    return redirect("console:group", pk=group.pk)


@staff_required
@require_POST
def group_access_remove(request: HttpRequest, pk: int) -> HttpResponse:
    group = _group(pk)
    policy = groups.policy_of(group)
    form = RemoveModelsForm(list(policy.allowed_models) if policy else [], request.POST)
    if not form.is_valid():
        return _group_page(request, group, status=400, remove_form=form)
    groups.remove_models(request.user, group, form.cleaned_data["models"])
    return _saved(request, group, "model access")


@staff_required
@require_POST
def group_limits(request: HttpRequest, pk: int) -> HttpResponse:
    group = _group(pk)
    form = RateLimitForm(request.POST)
    if not form.is_valid():
        return _group_page(request, group, status=400, limit_form=form)
    groups.set_rate_limit(request.user, {"group": group}, f"group {group.name}", **form.cleaned_data)
    return _saved(request, group, "rate limits")


@staff_required
@require_POST
def group_budget(request: HttpRequest, pk: int) -> HttpResponse:
    group = _group(pk)
    form = BudgetForm(request.POST)
    if not form.is_valid():
        return _group_page(request, group, status=400, budget_form=form)
    groups.change_budget(request.user, {"group": group}, f"group {group.name}", **form.cleaned_data)
    return _saved(request, group, "budget")

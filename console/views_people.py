"""People pages: the list, creating a person (with their one-time set-password link), and one person's
admin actions (active, staff, groups, rate limits, a new link). Transport only: changes are console.people's."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from billing.models import RateLimit
from console import people
from console.forms_people import PersonForm, PersonGroupsForm, RateLimitForm, limit_initial
from console.groups import set_rate_limit
from console.permissions import staff_required

STATUSES = {"active": Q(is_active=True), "inactive": Q(is_active=False), "staff": Q(is_staff=True)}


# A page of people at a time: a team of hundreds stays quick to render and to scan (search finds the rest).
PEOPLE_PAGE = 50


@staff_required
@require_GET
def people_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request, PersonForm())


def _list_page(request: HttpRequest, form: PersonForm, status: int = 200) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    shown = request.GET.get("status", "")
    rows = get_user_model().objects.prefetch_related("groups").order_by("username")
    if query:
        rows = rows.filter(Q(username__icontains=query) | Q(email__icontains=query))
    if shown in STATUSES:
        rows = rows.filter(STATUSES[shown])
    page = Paginator(rows, PEOPLE_PAGE).get_page(request.GET.get("page"))
    kept = request.GET.copy()
    kept.pop("page", None)
    context = {
        "people": page,
        "page": page,
        "query": kept.urlencode(),
        "form": form,
        "q": query,
        "status": shown,
        "statuses": STATUSES,
    }
    return render(request, "console/people.html", context, status=status)


@staff_required
@require_POST
@never_cache
def person_create(request: HttpRequest) -> HttpResponse:
    form = PersonForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    user = people.create_person(request.user, **form.cleaned_data)
    link = request.build_absolute_uri(people.set_password_path(user))
    mailed = bool(user.email) and people.mail_configured()
    if mailed:
        people.send_set_password_link(user, link)
    context = {"person": user, "link": link, "mailed": mailed, "timeout_days": _link_days()}
    return render(request, "console/person_created.html", context)


def _link_days() -> int:
    return settings.PASSWORD_RESET_TIMEOUT // 86_400


def _person(pk: int) -> Any:
    return get_object_or_404(get_user_model(), pk=pk)


def _manage_page(request: HttpRequest, person: Any, status: int = 200, **forms: Any) -> HttpResponse:
    limit = RateLimit.objects.filter(user=person).first()
    context = {
        "person": person,
        "groups_form": forms.get("groups_form") or PersonGroupsForm(initial={"groups": person.groups.all()}),
        "limit_form": forms.get("limit_form") or RateLimitForm(initial=limit_initial(limit)),
        "refused": forms.get("refused"),
        "link": forms.get("link"),
        "timeout_days": _link_days(),
    }
    return render(request, "console/person_manage.html", context, status=status)


@staff_required
@require_GET
def person_manage(request: HttpRequest, pk: int) -> HttpResponse:
    return _manage_page(request, _person(pk))


@staff_required
@require_POST
def person_active(request: HttpRequest, pk: int) -> HttpResponse:
    off = "Deactivated {}: their keys and open chats stopped."
    return _flag(request, _person(pk), people.set_active, "Reactivated {}.", off)


@staff_required
@require_POST
def person_staff(request: HttpRequest, pk: int) -> HttpResponse:
    return _flag(request, _person(pk), people.set_staff, "{} is staff now.", "{} is no longer staff.")


def _flag(request: HttpRequest, person: Any, change: Any, on: str, off: str) -> HttpResponse:
    value = request.POST.get("value")
    if value not in ("on", "off"):
        return _manage_page(request, person, status=400, refused="Choose on or off.")
    try:
        change(request.user, person, value == "on")
    except people.RefusedChange as refused:
        return _manage_page(request, person, status=400, refused=str(refused))
    messages.success(request, (on if value == "on" else off).format(person.get_username()))
    return redirect("console:person_manage", pk=person.pk)


@staff_required
@require_POST
def person_groups(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(pk)
    form = PersonGroupsForm(request.POST)
    if not form.is_valid():
        return _manage_page(request, person, status=400, groups_form=form)
    people.set_groups(request.user, person, list(form.cleaned_data["groups"]))
    messages.success(request, f"Saved {person.get_username()}'s groups.")
    return redirect("console:person_manage", pk=person.pk)


@staff_required
@require_POST
def person_limits(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(pk)
    form = RateLimitForm(request.POST)
    if not form.is_valid():
        return _manage_page(request, person, status=400, limit_form=form)
    set_rate_limit(request.user, {"user": person}, f"person {person.get_username()}", **form.cleaned_data)
    messages.success(request, f"Saved {person.get_username()}'s rate limits.")
    return redirect("console:person_manage", pk=person.pk)


@staff_required
@require_POST
@never_cache
def person_link(request: HttpRequest, pk: int) -> HttpResponse:
    """A new one-time set-password link, shown once on the response page (never stored)."""
    person = _person(pk)
    try:
        path = people.issue_link(request.user, person)
    except people.RefusedChange as refused:
        return _manage_page(request, person, status=400, refused=str(refused))
    return _manage_page(request, person, link=request.build_absolute_uri(path))


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """Where a new person (or one given a new link) chooses their password; then they sign in."""

    template_name = "console/set_password.html"
    success_url = reverse_lazy("login")

    def form_valid(self, form: Any) -> HttpResponse:
        messages.success(self.request, "Your password is set. Sign in with it.")
        return super().form_valid(form)

"""The console's spend pages: the explorer and its CSVs, a person's page (with key revocation) and the
models page. Staff only; transport only: the figures come from console.explorer, console.person and
console.model_costs, the range and filters from console.filters."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from catalog.models import CatalogModel
from console.anomalies import FactorForm, current_factor, default_factor, recent, set_factor
from console.audit import api_key_state, record
from console.explorer import explore
from console.exports import csv_lines, detail_rows, explorer_rows
from console.filters import PRESETS, STACKS, SelectionForm
from console.model_costs import costs, price_history, recent_changes, retiring_in_use
from console.permissions import staff_required
from console.person import TIMING_SAMPLE, person_page
from console.transcripts import TranscriptForm, open_transcript
from console.transcripts import choices as transcript_choices
from gateway.keys import revoke
from gateway.models import ApiKey


def _form_context(form: SelectionForm) -> dict[str, Any]:
    return {"form": form, "presets": PRESETS, "stacks": STACKS}


def _invalid(request: HttpRequest, template: str, form: SelectionForm, **context: Any) -> HttpResponse:
    """The page with the form's errors and no figures: a bad range or filter never shows a wrong total."""
    return render(request, template, {**_form_context(form), **context}, status=400)


@staff_required
@require_GET
@never_cache
def explorer(request: HttpRequest) -> HttpResponse:
    form = SelectionForm(request.GET)
    if not form.is_valid():
        return _invalid(request, "console/explorer.html", form)
    return render(request, "console/explorer.html", {**_form_context(form), "explorer": explore(form.selection())})


def _csv(request: HttpRequest, rows: Callable[[Any], Any], name: str) -> HttpResponse:
    form = SelectionForm(request.GET)
    if not form.is_valid():
        return _invalid(request, "console/explorer.html", form)
    selection = form.selection()
    response = StreamingHttpResponse(csv_lines(rows(selection)), content_type="text/csv; charset=utf-8")
    filename = f"orweb-{name}-{selection.start}-{selection.end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@staff_required
@require_GET
def explorer_csv(request: HttpRequest) -> HttpResponse:
    """The explorer page's figures, section by section."""
    return _csv(request, lambda selection: explorer_rows(explore(selection)), "spend")


@staff_required
@require_GET
def explorer_rows_csv(request: HttpRequest) -> HttpResponse:
    """The rollup rows (day, person, model, source) behind the explorer's figures."""
    return _csv(request, detail_rows, "spend-rows")


def _person(username: str) -> Any:
    users = get_user_model()
    return get_object_or_404(users, **{users.USERNAME_FIELD: username})


@staff_required
@require_GET
@never_cache
def person(request: HttpRequest, username: str) -> HttpResponse:
    someone = _person(username)
    query = request.GET.copy()
    query["person"], query["stack"] = someone.get_username(), "model"
    form = SelectionForm(query)
    if not form.is_valid():
        return _invalid(request, "console/person.html", form, person=someone)
    page = person_page(someone, form.selection())
    context = {
        **_form_context(form),
        "person": someone,
        "page": page,
        "timing_sample": TIMING_SAMPLE,
        "transcript_form": TranscriptForm(someone),
        "transcript_choices": transcript_choices(someone),
    }
    return render(request, "console/person.html", context)


@staff_required
@require_POST
@never_cache
def transcript(request: HttpRequest, username: str) -> HttpResponse:
    """Open one of the person's conversations read-only, with a reason, after recording it (audited)."""
    someone = _person(username)
    form = TranscriptForm(someone, request.POST)
    context = {"person": someone, "transcript_form": form, "transcript_choices": transcript_choices(someone)}
    if not form.is_valid():
        return render(request, "console/transcript.html", context, status=400)
    return render(request, "console/transcript.html", {**context, "transcript": open_transcript(request.user, form)})


@staff_required
@require_POST
def revoke_key(request: HttpRequest, username: str, key_id: int) -> HttpResponse:
    """Revoke one of the person's API keys (audited): /v1 refuses it from the next request on."""
    someone = _person(username)
    key = get_object_or_404(ApiKey, pk=key_id, user=someone)
    with transaction.atomic():
        before = api_key_state(key)
        revoked = revoke(key, request.user)
        if revoked:
            record(request.user, "api_key.revoke", "api_key", key, before, api_key_state(key))
    if revoked:
        messages.success(request, f"Revoked {someone.get_username()}'s key “{key.name}”.")
    else:
        messages.info(request, f"The key “{key.name}” was already revoked.")
    return redirect("console:person", username=someone.get_username())


@staff_required
@require_GET
@never_cache
def models(request: HttpRequest) -> HttpResponse:
    form = SelectionForm(request.GET)
    if not form.is_valid():
        return _invalid(request, "console/models.html", form)
    selection = form.selection()
    lines = costs(selection)
    shown = selection.model or (lines[0].model if lines else "")
    context = {
        **_form_context(form),
        "selection": selection,
        "costs": lines,
        "shown": shown,
        "history": price_history(shown) if shown else None,
        "changes": recent_changes(),
        "retiring": retiring_in_use(),
        "catalog_ids": CatalogModel.objects.order_by("pk").values_list("pk", flat=True),
    }
    return render(request, "console/models.html", context)


def _anomalies_page(request: HttpRequest, form: FactorForm | None = None, status: int = 200) -> HttpResponse:
    factor = current_factor()
    context = {
        "anomalies": recent(),
        "factor": factor,
        "default_factor": default_factor(),
        "floor": Decimal(settings.ORWEB_ANOMALY_FLOOR_USD),
        "factor_form": form or FactorForm(initial={"factor": factor}),
    }
    return render(request, "console/anomalies.html", context, status=status)


@staff_required
@require_GET
def anomalies(request: HttpRequest) -> HttpResponse:
    return _anomalies_page(request)


@staff_required
@require_POST
def anomaly_factor(request: HttpRequest) -> HttpResponse:
    """Set N; a bad value is a form error and changes nothing."""
    form = FactorForm(request.POST)
    if not form.is_valid():
        return _anomalies_page(request, form, status=400)
    set_factor(request.user, form.cleaned_data["factor"])
    messages.success(request, f"Spend anomalies are now days above {form.cleaned_data['factor']}× their median.")
    return redirect("console:anomalies")

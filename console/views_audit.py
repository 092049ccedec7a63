"""The audit log page: filterable, read-only. There is no way to change or remove a row, here or anywhere
(the migration's trigger refuses UPDATE and DELETE)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console import audit
from console.permissions import staff_required

AUDIT_PAGE = 50


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    target_type = forms.ChoiceField(
        required=False, choices=[("", "any")] + [(kind, kind.replace("_", " ")) for kind in audit.TARGET_TYPES]
    )
    target = forms.CharField(required=False, max_length=200)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The start date is after the end date.")
        if since and since > dt.date.today() + dt.timedelta(days=1):
            self.add_error("since", "That date is in the future.")
        return data


@staff_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    if form.is_valid():
        rows, status = audit.events(**form.cleaned_data), 200
    else:
        rows, status = audit.events().none(), 400
    page = Paginator(rows, AUDIT_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    return render(request, "console/audit.html", context, status=status)

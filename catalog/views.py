"""The models page: transport only; filtering and sorting are in `catalog.browse`."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from catalog.browse import DEFAULT_SORT, PAGE_SIZE, CatalogFilterForm, browse_models, sort_columns
from orweb.htmx import HtmxHttpRequest, wants_partial


@login_required
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def model_list(request: HtmxHttpRequest) -> HttpResponse:
    form = CatalogFilterForm(request.GET)
    filters = form.filters()
    sort = filters.get("sort", DEFAULT_SORT)
    page = Paginator(browse_models(filters), PAGE_SIZE).get_page(request.GET.get("page"))
    partial = wants_partial(request)
    context = {"form": form, "page": page, "sort": sort, "columns": sort_columns(sort)}
    return render(request, "catalog/models.html" + ("#results" if partial else ""), context)

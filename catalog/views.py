"""The models pages: transport only; filtering and sorting are in `catalog.browse`, one model's page in
`catalog.detail`."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from catalog.browse import (
    DEFAULT_SORT,
    PAGE_SIZE,
    CatalogFilterForm,
    browse_models,
    providers,
    sort_columns,
    visible_models,
)
from catalog.detail import detail_context
from orweb.htmx import HtmxHttpRequest, wants_partial


@login_required
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def model_list(request: HtmxHttpRequest) -> HttpResponse:
    form = CatalogFilterForm(request.GET)
    filters = form.filters()
    sort = filters.get("sort", DEFAULT_SORT)
    page = Paginator(browse_models(filters, request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    partial = wants_partial(request)
    context = {"form": form, "page": page, "sort": sort, "columns": sort_columns(sort)}
    if not partial:
        context["providers"] = providers(visible_models(request.user))
    return render(request, "catalog/models.html" + ("#results" if partial else ""), context)


@login_required
def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    """One model; 404 for a model this user may not use (as for one that doesn't exist)."""
    model = visible_models(request.user).filter(pk=model_id).first()
    if model is None:
        raise Http404("No such model.")
    return render(request, "catalog/detail.html", detail_context(model))

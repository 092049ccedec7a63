"""Searching, filtering and sorting the catalog for the models page.

Every filter lives in the query string (so a filtered view is a shareable URL) and is read by
`CatalogFilterForm`; a bad value in one field is ignored without losing the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import F, Q, QuerySet

from catalog.models import MILLION, CatalogModel

PAGE_SIZE = 100

SORTS: dict[str, tuple[Any, ...]] = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "context": (F("context_length").asc(nulls_last=True), "id"),
    "-context": (F("context_length").desc(nulls_last=True), "id"),
    "prompt": (F("prompt_price").asc(nulls_last=True), "id"),
    "-prompt": (F("prompt_price").desc(nulls_last=True), "id"),
    "completion": (F("completion_price").asc(nulls_last=True), "id"),
    "-completion": (F("completion_price").desc(nulls_last=True), "id"),
}
DEFAULT_SORT = "name"
CONTEXT_CHOICES = [
    ("", "Any context"),
    (8_000, "8K+ tokens"),
    (32_000, "32K+ tokens"),
    (128_000, "128K+ tokens"),
    (200_000, "200K+ tokens"),
    (1_000_000, "1M+ tokens"),
]
# Columns of the listing; the long text fields are left for the detail views that need them.
_LIST_FIELDS = (
    "id",
    "name",
    "context_length",
    "input_modalities",
    "supported_parameters",
    "prompt_price",
    "completion_price",
    "request_price",
    "is_available",
    "expiration_date",
)


class CatalogFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    image = forms.BooleanField(required=False, label="Image input")
    tools = forms.BooleanField(required=False, label="Tools")
    free = forms.BooleanField(required=False, label="Free")
    unavailable = forms.BooleanField(required=False, label="Show unavailable")
    min_context = forms.TypedChoiceField(
        choices=CONTEXT_CHOICES, coerce=int, empty_value=None, required=False, label="Context"
    )
    max_prompt = forms.DecimalField(
        required=False, min_value=Decimal(0), max_digits=14, decimal_places=6, label="Max prompt $/1M"
    )
    max_completion = forms.DecimalField(
        required=False, min_value=Decimal(0), max_digits=14, decimal_places=6, label="Max completion $/1M"
    )
    sort = forms.ChoiceField(choices=[(key, key) for key in SORTS], required=False)

    def filters(self) -> dict[str, Any]:
        """The valid filters only: an invalid field counts as not given."""
        self.is_valid()
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if value is not None and value is not False and value != ""
        }


def browse_models(filters: dict[str, Any]) -> QuerySet[CatalogModel]:
    """The catalog rows matching `filters` (as from `CatalogFilterForm.filters`), in the asked order."""
    models = CatalogModel.objects.only(*_LIST_FIELDS)
    if not filters.get("unavailable"):
        models = models.filter(is_available=True)
    for word in filters.get("q", "").split():
        models = models.filter(Q(id__icontains=word) | Q(name__icontains=word))
    if filters.get("image"):
        models = models.filter(input_modalities__contains=["image"])
    if filters.get("tools"):
        models = models.filter(supported_parameters__contains=["tools"])
    if filters.get("free"):
        models = models.filter(prompt_price=0, completion_price=0, request_price=0)
    if filters.get("min_context"):
        models = models.filter(context_length__gte=filters["min_context"])
    if "max_prompt" in filters:
        models = models.filter(prompt_price__lte=filters["max_prompt"] / MILLION)
    if "max_completion" in filters:
        models = models.filter(completion_price__lte=filters["max_completion"] / MILLION)
    return models.order_by(*SORTS[filters.get("sort") or DEFAULT_SORT])


@dataclass(frozen=True)
class SortColumn:
    """A sortable column header: `next_sort` is what clicking it asks for."""

    key: str
    label: str
    numeric: bool
    next_sort: str
    aria_sort: str


def sort_columns(current: str) -> list[SortColumn]:
    """The header of the listing: a click sorts by that column, a second click reverses it."""
    columns = []
    for key, label, numeric in (
        ("name", "Model", False),
        ("context", "Context", True),
        ("prompt", "Prompt / 1M", True),
        ("completion", "Completion / 1M", True),
    ):
        direction = "ascending" if current == key else "descending" if current == f"-{key}" else "none"
        next_sort = f"-{key}" if current == key else key
        columns.append(SortColumn(key, label, numeric, next_sort, direction))
    return columns

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
from catalog.viewer import usable_models

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
INPUT_CHOICES = [("", "Any input"), ("text", "Text"), ("image", "Image"), ("file", "File"), ("audio", "Audio")]
OUTPUT_CHOICES = [("", "Any output"), ("text", "Text"), ("image", "Image"), ("audio", "Audio")]
# Columns of the listing; the long text fields are left for the detail views that need them.
_LIST_FIELDS = (
    "id",
    "name",
    "context_length",
    "input_modalities",
    "output_modalities",
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
    reasoning = forms.BooleanField(required=False, label="Reasoning")
    input = forms.ChoiceField(choices=INPUT_CHOICES, required=False, label="Input")
    output = forms.ChoiceField(choices=OUTPUT_CHOICES, required=False, label="Output")
    provider = forms.CharField(required=False, max_length=100, label="Provider")
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


def visible_models(user: Any) -> QuerySet[CatalogModel]:
    """What the models pages show `user`: the models they may use (`catalog.viewer`), and to admins, who
    set prices and policies, every model, priced or not."""
    if user.is_staff or user.is_superuser:
        return CatalogModel.objects.all()
    return usable_models(user)


def provider_of(model_id: str) -> str:
    """The maker a model id names ("anthropic" of "anthropic/claude-sonnet-4")."""
    return model_id.partition("/")[0] if "/" in model_id else ""


def providers(models: QuerySet[CatalogModel]) -> list[str]:
    """The makers of `models`, for the provider filter."""
    return sorted({provider_of(pk) for pk in models.values_list("pk", flat=True)} - {""})


def browse_models(filters: dict[str, Any], user: Any) -> QuerySet[CatalogModel]:
    """The rows of the catalog `user` may see matching `filters` (as from `CatalogFilterForm.filters`), in
    the asked order. Unavailable models (kept for past usage) only when asked for."""
    models = visible_models(user).filter(is_available=True)
    if filters.get("unavailable"):
        models = models | CatalogModel.objects.filter(is_available=False)
    models = models.only(*_LIST_FIELDS)
    for word in filters.get("q", "").split():
        models = models.filter(Q(id__icontains=word) | Q(name__icontains=word))
    if filters.get("image"):
        models = models.filter(input_modalities__contains=["image"])
    if filters.get("tools"):
        models = models.filter(supported_parameters__contains=["tools"])
    if filters.get("reasoning"):
        models = models.filter(supported_parameters__contains=["reasoning"])
    if filters.get("input"):
        models = models.filter(input_modalities__contains=[filters["input"]])
    if filters.get("output"):
        models = models.filter(output_modalities__contains=[filters["output"]])
    if filters.get("provider"):
        models = models.filter(pk__startswith=f"{filters['provider']}/")
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

"""Admin for the catalog. Upstream fields are read-only (the next sync would overwrite them); what an
admin can do is set a model's price per million tokens, hand it back to the sync, and order the
quality list that `orweb/auto:quality` follows."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog.admin_prices import clear_admin_price, set_admin_price
from catalog.models import CatalogModel, PriceChange, QualityRank
from catalog.templatetags.catalog_tags import per_million

_UPSTREAM_FIELDS = (
    "id",
    "name",
    "canonical_slug",
    "description",
    "context_length",
    "max_completion_tokens",
    "input_modalities",
    "output_modalities",
    "supported_parameters",
    "tokenizer",
    "prompt_price",
    "completion_price",
    "request_price",
    "image_price",
    "cache_read_price",
    "price_set_by_admin",
    "is_available",
    "expiration_date",
    "upstream_created",
    "first_seen",
    "last_synced",
)


class CatalogModelForm(forms.ModelForm):
    """The model's fields plus the two prices an admin may set, in USD per million tokens."""

    prompt_per_million = forms.DecimalField(
        label="Set prompt price (USD / 1M tokens)", required=False, min_value=Decimal(0), decimal_places=6
    )
    completion_per_million = forms.DecimalField(
        label="Set completion price (USD / 1M tokens)", required=False, min_value=Decimal(0), decimal_places=6
    )

    class Meta:
        model = CatalogModel
        fields: list[str] = []

    def clean(self) -> dict:
        data = super().clean()
        given = [data.get("prompt_per_million") is not None, data.get("completion_per_million") is not None]
        if any(given) and not all(given):
            raise forms.ValidationError("Set both prices, or neither.")
        return data


class PriceChangeInline(admin.TabularInline):
    model = PriceChange
    extra = 0
    can_delete = False
    fields = ("effective_from", "source", "prompt_per_million", "completion_per_million", "changed_by")
    readonly_fields = fields
    ordering = ("-effective_from",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Prompt / 1M")
    def prompt_per_million(self, change: PriceChange) -> str:
        return per_million(change.prompt_price)

    @admin.display(description="Completion / 1M")
    def completion_per_million(self, change: PriceChange) -> str:
        return per_million(change.completion_price)


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    form = CatalogModelForm
    list_display = (
        "id",
        "name",
        "prompt_per_million",
        "completion_per_million",
        "context_length",
        "is_available",
        "price_set_by_admin",
    )
    list_filter = ("is_available", "price_set_by_admin", ("prompt_price", admin.EmptyFieldListFilter))
    search_fields = ("id", "name")
    readonly_fields = _UPSTREAM_FIELDS
    fieldsets = (
        (None, {"fields": ("prompt_per_million", "completion_per_million")}),
        ("From OpenRouter", {"fields": _UPSTREAM_FIELDS}),
    )
    inlines = (PriceChangeInline,)
    actions = ("use_upstream_price",)
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Prompt / 1M", ordering="prompt_price")
    def prompt_per_million(self, model: CatalogModel) -> str:
        return per_million(model.prompt_price)

    @admin.display(description="Completion / 1M", ordering="completion_price")
    def completion_per_million(self, model: CatalogModel) -> str:
        return per_million(model.completion_price)

    def save_model(self, request: HttpRequest, obj: CatalogModel, form: CatalogModelForm, change: bool) -> None:
        prompt = form.cleaned_data.get("prompt_per_million")
        completion = form.cleaned_data.get("completion_per_million")
        if prompt is not None and completion is not None:
            set_admin_price(obj.pk, prompt, completion, request.user)

    @admin.action(description="Use OpenRouter's price again (from the next sync)")
    def use_upstream_price(self, request: HttpRequest, queryset: QuerySet[CatalogModel]) -> None:
        for model_id in queryset.filter(price_set_by_admin=True).values_list("pk", flat=True):
            clear_admin_price(model_id)
        self.message_user(request, "The next sync will set these models' prices from OpenRouter.", messages.INFO)


@admin.register(QualityRank)
class QualityRankAdmin(admin.ModelAdmin):
    """Lower rank = preferred by `orweb/auto:quality`; ranks are edited right in the list."""

    list_display = ("model", "rank")
    list_display_links = ("model",)
    list_editable = ("rank",)
    ordering = ("rank",)
    autocomplete_fields = ("model",)

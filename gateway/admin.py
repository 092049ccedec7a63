"""Admin pages for the per-group model policies and personal API keys (append registrations only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog.models import CatalogModel
from gateway.keys import revoke
from gateway.models import ApiKey, GroupPolicy

# What gateway.policy can require of a model: an input modality, or any supported parameter name.
CAPABILITIES = ("image", "file", "audio", "video", "tools", "structured_outputs", "reasoning")


class GroupPolicyForm(forms.ModelForm):
    """Model access with real widgets (models picked from the catalog, capabilities ticked), not JSON."""

    allowed_models = forms.MultipleChoiceField(
        required=False, widget=FilteredSelectMultiple("models", is_stacked=False), label="Allowed models"
    )
    required_capabilities = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(name, name) for name in CAPABILITIES],
        help_text="With “allow by rule”: a model must have every capability ticked.",
    )

    class Meta:
        model = GroupPolicy
        fields = (
            "group",
            "allowed_models",
            "allow_by_rule",
            "max_price_per_million",
            "required_capabilities",
            "allow_web_search",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ids = list(CatalogModel.objects.order_by("id").values_list("id", flat=True))
        ids += [chosen for chosen in (self.instance.allowed_models or []) if chosen not in ids]
        self.fields["allowed_models"].choices = [(model_id, model_id) for model_id in ids]


@admin.register(GroupPolicy)
class GroupPolicyAdmin(admin.ModelAdmin):
    form = GroupPolicyForm
    list_display = ("group", "allow_by_rule", "max_price_per_million", "required_capabilities", "allow_web_search")
    search_fields = ("group__name",)
    autocomplete_fields = ("group",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Read-only: keys are made by their owners (or `create_api_key`); admins can only revoke them."""

    list_display = ("name", "user", "prefix", "created", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("user", "name", "prefix", "created", "last_used_at", "revoked_at")
    exclude = ("hashed_key",)
    actions = ("revoke_keys",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = sum(revoke(key, request.user) for key in queryset)
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)

"""Admin pages for the per-group model policies and personal API keys (append registrations only)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from gateway.keys import revoke
from gateway.models import ApiKey, GroupPolicy


@admin.register(GroupPolicy)
class GroupPolicyAdmin(admin.ModelAdmin):
    list_display = ("group", "allow_by_rule", "max_price_per_million", "required_capabilities")
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

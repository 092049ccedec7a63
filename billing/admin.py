"""Admin pages for budgets and rate limits (editable) and the ledger, holds, budget periods and rollups
(read-only: money records are written by the metered path only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import Budget, BudgetPeriod, DailyUsage, Hold, LedgerEntry, RateLimit


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money records are written by the metered path only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class BudgetPeriodInline(admin.TabularInline):
    model = BudgetPeriod
    fields = ("start", "spent", "held", "alerted")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-start",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("label", "limit_usd", "period", "alert_percent", "updated")
    list_filter = ("period",)
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")
    exclude = ("person",)
    inlines = [BudgetPeriodInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Budget]:
        """The admins' budgets: a cap a person set on themselves is theirs to change (the console lists it)."""
        return super().get_queryset(request).filter(person=None)


@admin.register(RateLimit)
class RateLimitAdmin(admin.ModelAdmin):
    list_display = ("owner", "requests_per_minute", "tokens_per_minute", "concurrent_streams")
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")

    @admin.display(description="Rate limits of")
    def owner(self, row: RateLimit) -> str:
        return f"person {row.user}" if row.user_id else f"group {row.group}"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created",
        "user",
        "source",
        "api_key_id",
        "served_model",
        "status",
        "cost",
        "cost_source",
        "prompt_tokens",
        "completion_tokens",
    )
    list_filter = ("source", "status", "cost_source")
    search_fields = ("user__username", "served_model", "requested_model", "generation_id")
    date_hierarchy = "created"


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ("day", "user", "model", "source", "requests", "errors", "cost")
    list_filter = ("source",)
    search_fields = ("user__username", "model")
    date_hierarchy = "day"


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "amount", "created", "expires_at", "released_at")

"""Django admin's changes to people, groups, budgets, rate limits, model access and keys go to the audit log
too: the registrations of auth, billing and gateway are replaced by subclasses that record each save,
delete and key revocation (console sits above those apps, so they need not know about the log).

Django admin runs each save in one transaction (form, related objects, its own LogEntry); the audit row is
written inside it, after the related objects, so a person's groups are in the "after" state.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from billing.admin import BudgetAdmin, RateLimitAdmin
from billing.models import Budget, RateLimit
from console.audit import (
    api_key_state,
    budget_state,
    group_state,
    model_access_state,
    person_state,
    rate_limit_state,
    record,
)
from gateway.admin import ApiKeyAdmin, GroupPolicyAdmin
from gateway.keys import revoke
from gateway.models import ApiKey, GroupPolicy

_BEFORE = "_console_audit_before"


class AuditedAdmin(admin.ModelAdmin):
    """Records every add, change and delete made through this admin page."""

    audit_type = ""

    def audit_state(self, obj: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    def audit_target(self, obj: Any) -> tuple[Model, str]:
        """What the row is logged against (a budget against its owner) and its label."""
        return obj, str(obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        stored = type(obj).objects.filter(pk=obj.pk).first() if change else None
        setattr(request, _BEFORE, self.audit_state(stored) if stored is not None else None)
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        target, label = self.audit_target(obj)
        action = f"{self.audit_type}.{'change' if change else 'create'}"
        before = getattr(request, _BEFORE, None)
        record(request.user, action, self.audit_type, target, before, self.audit_state(obj), via="admin", label=label)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        before, (target, label) = self.audit_state(obj), self.audit_target(obj)
        super().delete_model(request, obj)
        record(
            request.user, f"{self.audit_type}.delete", self.audit_type, target, before, None, via="admin", label=label
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


def _owner(row: Budget | RateLimit) -> tuple[Model, str]:
    if row.user_id:
        return row.user, f"person {row.user.get_username()}"
    return row.group, f"group {row.group.name}"


class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    audit_type = "person"

    def audit_state(self, obj: Any) -> dict[str, Any]:
        return person_state(obj)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Django admin's "change password" form: a set password is recorded (never the password)."""
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = get_user_model().objects.get(pk=id)
            record(request.user, "person.password_set", "person", user, None, {"password_set": True}, via="admin")
        return response


class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    audit_type = "group"

    def audit_state(self, obj: Any) -> dict[str, Any]:
        return group_state(obj)


class AuditedBudgetAdmin(AuditedAdmin, BudgetAdmin):
    audit_type = "budget"
    audit_target = staticmethod(_owner)

    def audit_state(self, obj: Any) -> dict[str, Any] | None:
        return budget_state(obj)


class AuditedRateLimitAdmin(AuditedAdmin, RateLimitAdmin):
    audit_type = "rate_limit"
    audit_target = staticmethod(_owner)

    def audit_state(self, obj: Any) -> dict[str, Any] | None:
        return rate_limit_state(obj)


class AuditedGroupPolicyAdmin(AuditedAdmin, GroupPolicyAdmin):
    audit_type = "model_access"

    def audit_state(self, obj: Any) -> dict[str, Any] | None:
        return model_access_state(obj)

    def audit_target(self, obj: Any) -> tuple[Model, str]:
        return obj.group, obj.group.name


class AuditedApiKeyAdmin(ApiKeyAdmin):
    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for key in queryset.select_related("user"):
            before = api_key_state(key)
            with transaction.atomic():
                if revoke(key, request.user):
                    revoked += 1
                    record(request.user, "api_key.revoke", "api_key", key, before, api_key_state(key), via="admin")
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


for model, audited in (
    (get_user_model(), AuditedUserAdmin),
    (Group, AuditedGroupAdmin),
    (Budget, AuditedBudgetAdmin),
    (RateLimit, AuditedRateLimitAdmin),
    (GroupPolicy, AuditedGroupPolicyAdmin),
    (ApiKey, AuditedApiKeyAdmin),
):
    admin.site.unregister(model)
    admin.site.register(model, audited)

"""Groups: members, model access (gateway.models.GroupPolicy), rate limits and budgets, each change one
transaction with its audit row.

Model access is stored as gateway.policy reads it: a group with no policy restricts nothing; a policy
allows its `allowed_models` plus, with `allow_by_rule`, every model within the price cap that has every
required capability. Picking a provider adds that provider's models to the list as they are today.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from billing.budgets import set_budget
from billing.models import Budget, RateLimit
from catalog.models import CatalogModel
from console.audit import budget_state, group_state, model_access_state, rate_limit_state, record
from gateway.models import GroupPolicy
from gateway.policy import policy_allows

CAPABILITIES = (
    ("tools", "Tool calls"),
    ("image", "Image input"),
    ("file", "File input"),
    ("audio", "Audio input"),
    ("structured_outputs", "Structured outputs"),
    ("reasoning", "Reasoning"),
)


def create_group(actor: Any, name: str) -> Group:
    with transaction.atomic():
        group = Group.objects.create(name=name)
        record(actor, "group.create", "group", group, None, group_state(group))
    return group


def add_members(actor: Any, group: Group, users: list[Any]) -> None:
    with transaction.atomic():
        before = group_state(group)
        group.user_set.add(*users)
        record(actor, "group.members", "group", group, before, group_state(group))


def remove_member(actor: Any, group: Group, user: Any) -> None:
    with transaction.atomic():
        before = group_state(group)
        group.user_set.remove(user)
        record(actor, "group.members", "group", group, before, group_state(group))


def providers() -> list[str]:
    """Every provider in the catalog (the part of a model id before the slash)."""
    ids = CatalogModel.objects.filter(is_available=True).values_list("id", flat=True)
    return sorted({model_id.split("/", 1)[0] for model_id in ids if "/" in model_id})


def policy_of(group: Group) -> GroupPolicy | None:
    return GroupPolicy.objects.filter(group=group).first()


def allowed_now(policy: GroupPolicy | None) -> list[CatalogModel] | None:
    """The callable models this policy lets through now; None when the group restricts nothing."""
    if policy is None:
        return None
    return [model for model in CatalogModel.objects.callable().order_by("id") if policy_allows(policy, model)]


def set_rules(
    actor: Any,
    group: Group,
    *,
    restrict: bool,
    allow_by_rule: bool,
    max_price_per_million: Decimal | None,
    required_capabilities: list[str],
) -> None:
    """Restrict the group's models (keeping its chosen list) by these rules, or lift every restriction."""
    with transaction.atomic():
        policy = GroupPolicy.objects.select_for_update().filter(group=group).first()
        before = model_access_state(policy)
        if not restrict:
            if policy is not None:
                policy.delete()
            _access_changed(actor, group, before, None)
            return
        policy = policy or GroupPolicy(group=group)
        policy.allow_by_rule = allow_by_rule
        policy.max_price_per_million = max_price_per_million
        policy.required_capabilities = sorted(required_capabilities)
        policy.save()
        _access_changed(actor, group, before, policy)


def _access_changed(actor: Any, group: Group, before: dict[str, Any] | None, policy: GroupPolicy | None) -> None:
    record(actor, "model_access.change", "model_access", group, before, model_access_state(policy), label=group.name)


def add_models(actor: Any, group: Group, model_ids: list[str], provider_names: list[str]) -> int:
    """Allow these models and every current model of these providers; how many were new to the list."""
    picked = set(model_ids)
    for provider in provider_names:
        picked |= set(CatalogModel.objects.filter(id__startswith=f"{provider}/").values_list("id", flat=True))
    with transaction.atomic():
        policy, created = GroupPolicy.objects.select_for_update().get_or_create(group=group)
        before = None if created else model_access_state(policy)
        current = set(policy.allowed_models or [])
        policy.allowed_models = sorted(current | picked)
        policy.save(update_fields=["allowed_models"])
        _access_changed(actor, group, before, policy)
    return len(picked - current)


def remove_models(actor: Any, group: Group, model_ids: list[str]) -> None:
    with transaction.atomic():
        policy = GroupPolicy.objects.select_for_update().get(group=group)
        before = model_access_state(policy)
        policy.allowed_models = sorted(set(policy.allowed_models or []) - set(model_ids))
        policy.save(update_fields=["allowed_models"])
        _access_changed(actor, group, before, policy)


def set_rate_limit(actor: Any, owner: dict[str, Any], label: str, **limits: int | None) -> None:
    """Set a group's (or person's) per-minute limits; all empty removes the row (no limit from it)."""
    with transaction.atomic():
        row = RateLimit.objects.select_for_update().filter(**owner).first()
        before = rate_limit_state(row)
        target = next(iter(owner.values()))
        if all(value is None for value in limits.values()):
            if row is not None:
                row.delete()
            record(actor, "rate_limit.change", "rate_limit", target, before, None, label=label)
            return
        row = row or RateLimit(**owner)
        for name, value in limits.items():
            setattr(row, name, value)
        row.save()
        record(actor, "rate_limit.change", "rate_limit", target, before, rate_limit_state(row), label=label)


def change_budget(
    actor: Any, owner: dict[str, Any], label: str, amount: Decimal | None, period: str, alert_percent: int
) -> None:
    """Set a person's or group's budget through billing.budgets.set_budget; no amount removes it."""
    with transaction.atomic():
        existing = Budget.objects.select_for_update().filter(**owner).first()
        before = budget_state(existing)
        target = next(iter(owner.values()))
        if amount is None:
            if existing is not None:
                existing.delete()
            record(actor, "budget.change", "budget", target, before, None, label=label)
            return
        budget = set_budget(**owner, amount=amount, period=period, alert_percent=alert_percent)
        record(actor, "budget.change", "budget", target, before, budget_state(budget), label=label)

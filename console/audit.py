"""Writing the audit log: one row per admin change, with the target's state before and after.

Every change an admin makes, on the console's pages or in Django admin, goes through `record` in the same
transaction as the change itself, so a change is never without its row (nor a row without its change).
The snapshots below decide what "state" means for each kind of target: settings and membership, never
message content, never password hashes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

from billing.models import Budget, RateLimit
from console.models import AuditEvent
from gateway.models import ApiKey, GroupPolicy

TARGET_TYPES = ("person", "group", "budget", "rate_limit", "model_access", "api_key", "setting")


def _plain(value: Any) -> Any:
    """JSON-safe and exact: Decimals as strings (never floats), datetimes as ISO text."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def person_state(user: Any) -> dict[str, Any]:
    return {
        "username": user.username,
        "email": user.email,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": sorted(user.groups.values_list("name", flat=True)) if user.pk else [],
    }


def group_state(group: Group) -> dict[str, Any]:
    return {"name": group.name, "members": sorted(group.user_set.values_list("username", flat=True))}


def budget_state(budget: Budget | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {
        "owner": f"person {budget.user}" if budget.user_id else f"group {budget.group}",
        "limit_usd": _plain(budget.limit_usd),
        "period": budget.period,
        "alert_percent": budget.alert_percent,
    }


def rate_limit_state(limit: RateLimit | None) -> dict[str, Any] | None:
    if limit is None:
        return None
    return {
        "requests_per_minute": limit.requests_per_minute,
        "tokens_per_minute": limit.tokens_per_minute,
        "concurrent_streams": limit.concurrent_streams,
    }


def model_access_state(policy: GroupPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "allowed_models": sorted(policy.allowed_models or []),
        "allow_by_rule": policy.allow_by_rule,
        "max_price_per_million": _plain(policy.max_price_per_million),
        "required_capabilities": sorted(policy.required_capabilities or []),
    }


def api_key_state(key: ApiKey) -> dict[str, Any]:
    return {"name": key.name, "prefix": key.prefix, "owner": str(key.user), "revoked_at": _plain(key.revoked_at)}


def record(
    actor: Any,
    action: str,
    target_type: str,
    target: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    via: str = AuditEvent.Via.CONSOLE,
    label: str | None = None,
) -> AuditEvent | None:
    """Append one row; nothing when the change changed nothing (a form saved as it was)."""
    if target_type not in TARGET_TYPES:
        raise ValueError(f"unknown audit target type {target_type!r}")
    before, after = _plain_dict(before), _plain_dict(after)
    if before is not None and before == after:
        return None
    return AuditEvent.objects.create(
        actor_id=getattr(actor, "pk", None),
        actor_name=actor.get_username() if actor is not None else "system",
        action=action,
        target_type=target_type,
        target_id=target_key(target),
        target_label=(label or str(target))[:300],
        before=before,
        after=after,
        via=via,
    )


def target_key(target: Any) -> str:
    """How a target is named in the log: people and groups by kind and id (a budget or rate limit is
    logged against its owner), anything else by its own id."""
    if isinstance(target, Group):
        return f"group:{target.pk}"
    if isinstance(target, AbstractBaseUser):
        return f"person:{target.pk}"
    return str(target.pk)


def _plain_dict(state: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if state is None else {key: _plain(value) for key, value in state.items()}


def events(
    *,
    actor: str = "",
    target_type: str = "",
    action: str = "",
    target: str = "",
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> QuerySet[AuditEvent]:
    """The log, newest first, narrowed by each filter given (dates inclusive, UTC)."""
    rows = AuditEvent.objects.all()
    if actor:
        rows = rows.filter(actor_name__iexact=actor)
    if target_type:
        rows = rows.filter(target_type=target_type)
    if action:
        rows = rows.filter(action=action)
    if target:
        rows = rows.filter(Q(target_label__icontains=target) | Q(target_id=target))
    if since is not None:
        rows = rows.filter(at__gte=dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC))
    if until is not None:
        rows = rows.filter(at__lt=dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC))
    return rows


def record_budget_change(sender: Any, *, actor: Any, owner: Any, before: Any, after: Any, **kwargs: Any) -> None:
    """`billing.signals.budget_changed`: a budget set outside the console (the team page) is logged too."""
    record(actor, "budget.change", "budget", owner, budget_state(before), budget_state(after), label=str(owner))

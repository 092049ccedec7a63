"""Read helpers for the chat pages: owned objects or 404, the transcript as template data, the picker.

Everything here reads; state changes live in `chat.conversations`. Lookups always filter by the
requesting user, so another user's id answers 404 (never 403: we don't confirm that it exists).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from django.db.models import QuerySet, prefetch_related_objects
from django.shortcuts import get_object_or_404
from django.utils import timezone

from chat import conversations
from chat.models import Attachment, Conversation, Message, Preset
from chat.render import render_markdown
from gateway.types import AUTO_MODELS
from orweb import sql

AUTO_LABELS = {
    "orweb/auto": "Auto: balanced",
    "orweb/auto:cost": "Auto: cheapest that fits",
    "orweb/auto:speed": "Auto: fastest",
    "orweb/auto:quality": "Auto: best quality",
}


def owned_conversation(user: Any, pk: int) -> Conversation:
    return get_object_or_404(Conversation, pk=pk, user=user)


def owned_attachment(user: Any, pk: int) -> Attachment:
    return get_object_or_404(Attachment, pk=pk, user=user)


def owned_preset(user: Any, pk: int) -> Preset:
    return get_object_or_404(Preset, pk=pk, user=user)


def conversation_list(user: Any, q: str = "") -> QuerySet[Conversation]:
    """The user's conversations, newest activity first; `q` searches titles and message text."""
    q = q.strip()
    found = conversations.search(user, q) if q else Conversation.objects.filter(user=user)
    return found.filter(compare_group__isnull=True).order_by("-updated")


def _versions(message: Message, siblings: list[int]) -> dict[str, int | None]:
    """Where a message sits among its versions (same parent, same role), as `version_info` says it."""
    at = siblings.index(message.pk) if message.pk in siblings else 0
    return {
        "index": at + 1,
        "count": len(siblings) or 1,
        "prev_id": siblings[at - 1] if at > 0 else None,
        "next_id": siblings[at + 1] if at + 1 < len(siblings) else None,
    }


def message_view(message: Message, siblings: list[int]) -> dict[str, Any]:
    """What `chat/_message.html` shows for one message; mirrors the websocket "message" frame."""
    return {
        "id": message.pk,
        "role": message.role,
        "status": message.status,
        "is_live": message.is_live,
        "seq": message.seq,
        "content": message.content,
        "html": render_markdown(message.content),
        "error": message.error,
        "model": message.served_model or message.requested_model,
        "requested_model": message.requested_model,
        "provider": message.provider,
        "skipped": message.skipped,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "cost": message.cost,
        "ttft_ms": message.ttft_ms,
        "tokens_per_second": message.tokens_per_second,
        "tool_calls": message.tool_calls,
        "attachments": list(message.attachments.all()),
        "versions": _versions(message, siblings),
    }


def transcript(conversation: Conversation) -> list[dict[str, Any]]:
    """The branch being shown, root first, ready for the template, in a fixed number of queries however
    long the conversation is. Tool-role messages are shown inside their reply's `tool_calls`."""
    path = [m for m in conversations.branch_path(conversation) if m.role != Message.Role.TOOL]
    prefetch_related_objects(path, "attachments")
    siblings: dict[tuple[int | None, str], list[int]] = defaultdict(list)
    for pk, parent_id, role in conversation.messages.order_by("created", "id").values_list("id", "parent_id", "role"):
        siblings[(parent_id, role)].append(pk)
    return [message_view(m, siblings[(m.parent_id, m.role)]) for m in path]


def model_choices(user: Any) -> list[dict[str, Any]]:
    """The picker's rows: the `orweb/auto*` choices first, then every model this user may call."""
    from gateway.policy import allowed_models

    rows: list[dict[str, Any]] = [
        {
            "id": auto,
            "name": AUTO_LABELS.get(auto, auto),
            "auto": True,
            "images": True,
            "tools": True,
            "context": None,
            "prompt_pm": None,
            "completion_pm": None,
            "free": False,
        }
        for auto in AUTO_MODELS
    ]
    for model in allowed_models(user).order_by("id"):
        rows.append(
            {
                "id": model.id,
                "name": model.name or model.id,
                "auto": False,
                "images": model.supports_images,
                "tools": model.supports_tools,
                "context": model.context_length,
                "prompt_pm": model.prompt_price_per_million,
                "completion_pm": model.completion_price_per_million,
                "free": model.is_free,
            }
        )
    return rows


def model_ids(user: Any) -> set[str]:
    return {row["id"] for row in model_choices(user)}


@dataclass
class SpendSummary:
    """The header's "spent / left" line: this month's spend and the tightest budget that applies."""

    spent: Decimal
    remaining: Decimal | None
    budget: str | None


@cache
def _spend_statement() -> str:
    """This month's spend and every budget that applies with what its current period has used: one
    statement (the header reads it on every page, and the chat after every reply)."""
    from django.contrib.auth import get_user_model

    users = get_user_model()
    return f"""
SELECT
    (SELECT coalesce(sum(e.cost), 0)::text FROM billing_ledgerentry e
     WHERE e.user_id = %(user)s AND e.created >= %(month_start)s),
    (SELECT json_agg(json_build_array(
         b.id, b.period, b.limit_usd::text, (coalesce(p.spent, 0) + coalesce(p.held, 0))::text,
         b.user_id IS NOT NULL, coalesce(u."{users.USERNAME_FIELD}", g.name)))
     FROM billing_budget b
     LEFT JOIN {sql.table(users)} u ON u.id = b.user_id
     LEFT JOIN auth_group g ON g.id = b.group_id
     LEFT JOIN billing_budgetperiod p ON p.budget_id = b.id AND p.start =
         CASE b.period WHEN 'day' THEN %(day)s::date WHEN 'week' THEN %(week)s::date ELSE %(month)s::date END
     WHERE b.user_id = %(user)s
        OR b.group_id IN (SELECT g2.group_id FROM auth_user_groups g2 WHERE g2.user_id = %(user)s))
"""


def spend_summary(user: Any) -> SpendSummary:
    """What `billing.budgets.status_for` would say of the tightest budget, without creating the current
    period rows it reads (a missing one has used nothing)."""
    from billing.budgets import period_start, today
    from billing.models import ADJECTIVE, Period

    day = today()
    month_start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    [(spent, budgets)] = sql.fetch(
        _spend_statement(),
        {
            "user": user.pk,
            "month_start": month_start,
            "day": period_start(Period.DAY, day),
            "week": period_start(Period.WEEK, day),
            "month": period_start(Period.MONTH, day),
        },
    )
    tightest = min(
        (
            (max(Decimal(limit) - Decimal(used), Decimal(0)), budget_id, period, is_user, owner)
            for budget_id, period, limit, used, is_user, owner in budgets or []
        ),
        default=None,
    )
    if tightest is None:
        return SpendSummary(spent=Decimal(spent), remaining=None, budget=None)
    remaining, _, period, is_user, owner = tightest
    label = f"{ADJECTIVE[period]} budget of {'user' if is_user else 'group'} {owner}"
    return SpendSummary(spent=Decimal(spent), remaining=remaining, budget=label)

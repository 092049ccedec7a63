"""Server → browser websocket frames, built in one place so the consumer, the runner and the pages agree.

A message travels as its page markup (chat.partials) plus the few fields a tab routes by; money as
exact plain amounts for machines (`orweb.money.plain_usd`) and as people read them (`format_usd`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.template.loader import render_to_string

from billing.spend import SpendSummary
from chat.conversations import version_info
from chat.models import Attachment, Message
from chat.partials import message_view, render_message
from orweb.money import format_usd, plain_usd


def conversation_group(conversation_id: int) -> str:
    """The channel-layer group every open tab of a conversation listens to (built from the id only)."""
    return f"conversation.{conversation_id}"


def message_data(view: dict[str, Any]) -> dict[str, Any]:
    """A message (`partials.message_view`) as frames carry it: its markup and what a tab routes by."""
    return {
        "id": view["id"],
        "parent_id": view["parent_id"],
        "role": view["role"],
        "status": view["status"],
        "seq": view["seq"],
        "html": render_message(view),
    }


def _view(
    message: Message, versions: dict[str, int | None] | None, attachments: Sequence[Attachment] | None
) -> dict[str, Any]:
    if versions is None:
        versions = version_info(message)
    if attachments is None:
        attachments = list(message.attachments.all())
    return message_view(message, versions, attachments)


def message_frame(
    message: Message,
    *,
    versions: dict[str, int | None] | None = None,
    attachments: Sequence[Attachment] | None = None,
) -> dict[str, Any]:
    """A whole message: sent when it is created and when it is asked for (database reads: call in a
    thread). Callers that know its versions or attachments (a message they just created) pass them: no
    query. A reply's attachments are the images its model made."""
    return {"type": "message", "message": message_data(_view(message, versions, attachments))}


def done_frame(
    message: Message,
    conversation_cost: Decimal,
    versions: dict[str, int | None] | None = None,
    attachments: Sequence[Attachment] | None = None,
) -> dict[str, Any]:
    """A reply has ended: its final markup, and the conversation's new total. `attachments`: the images
    its model made, when the caller has them (else read)."""
    return {
        "type": "done",
        "message_id": message.pk,
        "status": message.status,
        "error": message.error,
        "seq": message.seq,
        "html": render_message(_view(message, versions, attachments)),
        "conversation_cost": plain_usd(conversation_cost),
        "conversation_cost_shown": format_usd(conversation_cost),
    }


def tool_frame(message_id: int, call: dict[str, Any]) -> dict[str, Any]:
    """A tool call of a streaming reply and its result, as the message shows it."""
    return {
        "type": "tool",
        "message_id": message_id,
        "call": call,
        "html": render_to_string("chat/_tool_call.html", {"call": call}),
    }


def branch_frame(leaf_id: int, views: list[dict[str, Any]]) -> dict[str, Any]:
    """The branch shown changed (a version switch): every message of it, root first."""
    return {"type": "branch", "leaf_id": leaf_id, "messages": [message_data(view) for view in views]}


def budget_frame(summary: SpendSummary) -> dict[str, Any]:
    """The user's spend after a reply: the header's spend line, and the amounts."""
    return {
        "type": "budget",
        "spent": plain_usd(summary.spent),
        "remaining": plain_usd(summary.remaining),
        "budget": summary.budget,
        "html": render_to_string("chat/_spend.html", {"spend": summary}),
    }


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}

"""Server → browser websocket frames, built in one place so the consumer, the runner and the pages agree."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chat.conversations import version_info
from chat.models import Message
from chat.render import render_markdown


def conversation_group(conversation_id: int) -> str:
    """The channel-layer group every open tab of a conversation listens to (built from the id only)."""
    return f"conversation.{conversation_id}"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def meta(message: Message) -> dict[str, Any]:
    return {
        "model": message.served_model or message.requested_model,
        "requested_model": message.requested_model,
        "provider": message.provider,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "cost": _money(message.cost),
        "ttft_ms": message.ttft_ms,
        "tokens_per_second": _money(message.tokens_per_second),
        "skipped": message.skipped,
    }


def message_frame(
    message: Message, *, versions: dict[str, int | None] | None = None, attachment_ids: list[int] | None = None
) -> dict[str, Any]:
    """A whole message: sent when it is created and when it finishes (database reads: call in a thread).
    Callers that know the versions or attachments (a message they just created) pass them: no query."""
    return {
        "type": "message",
        "message": {
            "id": message.pk,
            "parent_id": message.parent_id,
            "role": message.role,
            "status": message.status,
            "seq": message.seq,
            "html": render_markdown(message.content),
            "content_text": message.content if message.role == Message.Role.USER else None,
            "error": message.error,
            "tool_calls": message.tool_calls,
            "attachments": (
                list(message.attachments.values_list("id", flat=True)) if attachment_ids is None else attachment_ids
            ),
            "meta": meta(message),
            "versions": version_info(message) if versions is None else versions,
        },
    }


ONLY_VERSION = {"index": 1, "count": 1, "prev_id": None, "next_id": None}


def done_frame(message: Message, conversation_cost: Decimal) -> dict[str, Any]:
    return {
        "type": "done",
        "message_id": message.pk,
        "status": message.status,
        "error": message.error,
        "html": render_markdown(message.content),
        "seq": message.seq,
        "meta": meta(message),
        "conversation_cost": _money(conversation_cost),
    }


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}

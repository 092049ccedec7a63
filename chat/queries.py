"""Read helpers for the chat pages: owned objects or 404, the transcript as template data, the picker.

Everything here reads; state changes live in `chat.conversations`. Lookups always filter by the
requesting user, so another user's id answers 404 (never 403: we don't confirm that it exists).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import QuerySet, prefetch_related_objects
from django.shortcuts import get_object_or_404

from chat import conversations
from chat.models import Attachment, Conversation, Message, Preset
from chat.partials import message_view
from gateway.policy import allowed_models
from gateway.types import AUTO_MODELS

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


def transcript(conversation: Conversation) -> list[dict[str, Any]]:
    """The branch being shown, root first, as `chat.partials.message_view`s, in a fixed number of queries
    however long the conversation is. Tool-role messages are shown inside their reply's `tool_calls`."""
    path = [m for m in conversations.branch_path(conversation) if m.role != Message.Role.TOOL]
    prefetch_related_objects(path, "attachments")
    siblings: dict[tuple[int | None, str], list[int]] = defaultdict(list)
    for pk, parent_id, role in conversation.messages.order_by("created", "id").values_list("id", "parent_id", "role"):
        siblings[(parent_id, role)].append(pk)
    return [
        message_view(m, conversations.version_position(siblings[(m.parent_id, m.role)], m.pk), m.attachments.all())
        for m in path
    ]


def model_choices(user: Any) -> list[dict[str, Any]]:
    """The picker's rows: the `orweb/auto*` choices first, then every model this user may chat with (not
    embedding models: they answer only /v1/embeddings)."""
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
    for model in allowed_models(user).exclude(output_modalities__contains=["embeddings"]).order_by("id"):
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

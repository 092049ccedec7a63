"""A reply the gateway refused before any call (budget, rate limit, policy, an image to a text-only model)
is not a turn of the conversation: it is taken back, and the tabs show why as a notice in the composer
that stays until dismissed, with the sender's text put back to send again. A "0 in / 0 out $0" reply with
a Continue button said the same thing worse.

A reply that had already produced something (a tool step, text, a cost) keeps its row: what it has stays.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from chat import frames, queries
from chat.conversations import latest_leaf_under
from chat.models import Conversation, Message


def notice_frame(code: str, message: str, message_id: int, *, restore: bool) -> dict[str, Any]:
    """Why a reply was not sent; `restore`: the sender's message was taken back, so its tab puts it back in
    the composer."""
    return {"type": "notice", "code": code, "message": message, "message_id": message_id, "restore": restore}


def _new_leaf(conversation: Conversation, parent: Message | None) -> Message | None:
    """Where the branch shown ends once the refused turn is gone: under what stays of its parent."""
    if parent is not None:
        return latest_leaf_under(parent)
    root = conversation.messages.filter(parent=None).order_by("-created", "-id").first()
    return latest_leaf_under(root) if root else None


@transaction.atomic
def withdraw(message_id: int, code: str, message: str) -> list[dict[str, Any]] | None:
    """Take back refused reply `message_id` (still streaming, nothing produced) and, if it was the only
    reply of a user message just sent, that message too; returns the frames that tell the tabs (the branch
    now shown, then the notice), or None if the reply is no longer there to take back."""
    reply = Message.objects.select_for_update().filter(pk=message_id, status=Message.Status.STREAMING).first()
    if reply is None:
        return None
    conversation = Conversation.objects.select_for_update().get(pk=reply.conversation_id)
    if reply.content or reply.tool_calls or reply.cost or reply.completion_tokens:
        # A "continue" of an earlier reply: its text stays, as it was before the attempt.
        reply.status = Message.Status.INCOMPLETE
        reply.save(update_fields=["status"])
        return [
            frames.branch_frame(reply.pk, queries.transcript(conversation)),
            notice_frame(code, message, reply.pk, restore=False),
        ]
    parent = reply.parent
    reply.delete()
    restore = parent is not None and parent.role == Message.Role.USER and not parent.children.exists()
    if restore:
        grandparent = parent.parent
        parent.delete()
        parent = grandparent
    leaf = _new_leaf(conversation, parent)
    conversation.current_leaf = leaf
    conversation.save(update_fields=["current_leaf", "updated"])
    return [
        frames.branch_frame(leaf.pk if leaf else 0, queries.transcript(conversation)),
        notice_frame(code, message, message_id, restore=restore),
    ]

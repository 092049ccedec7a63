"""The price of a message before Send: the composer asks as the user types (debounced), and the server
builds the request exactly as a send would (the history the model would get, the draft, its
attachments, the conversation's reasoning, search and file settings) and prices it with
`gateway.estimate` (the token estimate and the catalog prices, fees included): a range from the likely
cost to the worst case the hold would take, and what the budget keeps after it.

Compare mode asks the same for the one prompt and each chosen model (one column each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat import conversations, history, prompt
from chat.models import Conversation, Message
from gateway.estimate import Estimate, estimate
from gateway.types import ChatRequest
from orweb.errors import GatewayError
from orweb.money import format_usd, plain_usd


@dataclass(frozen=True)
class Shown:
    """An estimate as the composer shows it, or why there is none."""

    ok: bool
    text: str
    low: str = ""
    high: str = ""
    remaining: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "text": self.text, "low": self.low, "high": self.high, "remaining": self.remaining}


def describe(found: Estimate) -> Shown:
    """ "≈ $0.0012–$0.0040 · leaves $4.99 of your budget" (the range collapses when both ends agree)."""
    low, high = format_usd(found.low), format_usd(found.high)
    text = f"≈ {low}" if low == high else f"≈ {low}–{high}"
    if found.remaining is not None:
        text += (
            f" · leaves {format_usd(found.remaining)} of your budget"
            if found.remaining >= 0
            else " · more than your budget has left"
        )
    return Shown(
        True,
        text,
        plain_usd(found.low),
        plain_usd(found.high),
        None if found.remaining is None else plain_usd(found.remaining),
    )


def _priced(user: Any, request: ChatRequest) -> Shown:
    try:
        return describe(estimate(user, request))
    except GatewayError as exc:
        return Shown(False, exc.message)


def for_draft(conversation: Conversation, user: Any, content: str, attachment_ids: list[int]) -> Shown:
    """What sending `content` (with `attachment_ids`, the user's own) to `conversation` now would cost."""
    attachments = conversations.owned_attachments(conversation, attachment_ids)
    draft = Message(conversation=conversation, parent_id=conversation.current_leaf_id, role=Message.Role.USER)
    draft.content, draft.attachment_ids = content, [a.pk for a in attachments]
    reply = Message(conversation=conversation, role=Message.Role.ASSISTANT, content="")
    window, branch = history.read_branch(conversation.pk, conversation.current_leaf_id)
    turns = prompt.fit([*branch, draft], window, conversation)
    ctx = prompt.context(reply, conversation, user, turns)
    return _priced(user, prompt.request(ctx, ctx.history))


def for_compare(user: Any, text: str, models: list[str]) -> dict[str, Shown]:
    """What one compare prompt would cost with each of `models` (each column on its own)."""
    messages = [{"role": "user", "content": text}]
    return {model: _priced(user, ChatRequest(model=model, messages=messages)) for model in models}

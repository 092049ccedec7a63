"""Conversation titles: a cheap model summarises the first message (metered as source "system");
if that fails for any reason, the first words of the first message do. A model's title is made storable
(`orweb.text`) like any text a model writes.

The title model must answer in a few tokens: the cheapest allowed model used to be a free reasoning model
that spent its 20-token cap thinking and returned empty text, so no title ever came. So it is the setting
`ORWEB_TITLE_MODEL` when this user may use it, else the cheapest priced (not free: free models are
rate-limited hard and often think first), non-reasoning, text-out model they may use, with room to answer.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings

from chat.broadcast import publish
from chat.models import Conversation, Message
from gateway import metered, policy
from gateway.types import ChatRequest
from orweb.aio import db
from orweb.text import pg_text

log = logging.getLogger(__name__)

MAX_WORDS = 8
MAX_TOKENS = 60
PROMPT = (
    "Write a short title (at most 6 words) for a chat that starts with the message below. Reply with the title only."
)


def fallback_title(text: str) -> str:
    """The first words of `text`, for when no model can be asked."""
    words = text.split()
    title = " ".join(words[:MAX_WORDS])
    if len(words) > MAX_WORDS:
        title += "…"
    return title[:80] or "New chat"


def clean_title(text: str) -> str:
    """A model's answer as a title: one line, no quotes or trailing full stop, not too long."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(title:\s*)", "", line.strip(), flags=re.IGNORECASE).strip(" \"'*#`").rstrip(".")
    return line[:80]


def title_model(user: Any) -> str | None:
    """The model that titles this user's conversations (see the module docstring), or None."""
    allowed = policy.allowed_models(user)
    chosen = getattr(settings, "ORWEB_TITLE_MODEL", "")
    if chosen and allowed.filter(pk=chosen).exists():
        return chosen
    models = (
        allowed.exclude(supported_parameters__contains=["reasoning"])
        .filter(output_modalities__contains=["text"])
        .exclude(prompt_price=0, completion_price=0)
        .exclude(max_completion_tokens__lt=MAX_TOKENS)
        .exclude(pk__startswith="openrouter/")
    )
    best = min(models, key=lambda m: (m.prompt_price + m.completion_price, m.id), default=None)
    return best.id if best else None


@db
def _first_message(conversation_id: int) -> tuple[Any, str, str | None] | None:
    conversation = Conversation.objects.select_related("user").filter(pk=conversation_id).first()
    if conversation is None:
        return None
    first = conversation.messages.filter(role=Message.Role.USER).order_by("created", "id").first()
    text = first.content if first else ""
    return conversation.user, text, title_model(conversation.user)


async def make_title(user: Any, text: str, model: str | None) -> str:
    """Ask `model` for a title of `text`; the first words of `text` if that fails in any way."""
    if model is None or not text.strip():
        return fallback_title(text)
    request = ChatRequest(
        model=model,
        messages=[{"role": "system", "content": PROMPT}, {"role": "user", "content": text[:2000]}],
        max_tokens=MAX_TOKENS,
    )
    try:
        completion = await metered.complete(user, request, source="system")
    except Exception:
        log.info("title model failed; using the first words", exc_info=True)
        return fallback_title(text)
    return clean_title(completion.content) or fallback_title(text)


@db
def _save(conversation_id: int, title: str) -> bool:
    return Conversation.objects.filter(pk=conversation_id, title="").update(title=title) == 1


async def title_conversation(conversation_id: int) -> str | None:
    """Title an untitled conversation and tell its open tabs; returns the title, or None if it had one."""
    found = await _first_message(conversation_id)
    if found is None:
        return None
    user, text, model = found
    title = pg_text(await make_title(user, text, model))
    if not await _save(conversation_id, title):
        return None
    await publish(conversation_id, {"type": "title", "title": title})
    return title

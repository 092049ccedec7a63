"""A message's one markup, `chat/_message.html`: the pages include it and the "message", "done" and
"branch" frames carry it rendered here, so a tab shows a message exactly as a reload would. Streamed
deltas are the only text a tab adds itself (as text nodes, to the live message)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.template.loader import render_to_string

from chat.models import Attachment, Message
from chat.render import render_markdown
from chat.surface import citations


def message_view(
    message: Message, versions: dict[str, int | None], attachments: Sequence[Attachment]
) -> dict[str, Any]:
    """What `chat/_message.html` shows for one message. `versions` as `conversations.version_position`
    gives them; `attachments` are the message's images (with `pk` and `name`)."""
    return {
        "id": message.pk,
        "parent_id": message.parent_id,
        "role": message.role,
        "status": message.status,
        "is_live": message.is_live,
        "seq": message.seq,
        "content": message.content,
        # A live message shows its text raw until it ends (deltas are appended to it as text).
        "html": "" if message.is_live else render_markdown(message.content),
        "error": message.error,
        "model": message.served_model or message.requested_model,
        "provider": message.provider,
        "skipped": message.skipped,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "cost": message.cost,
        "ttft_ms": message.ttft_ms,
        "tokens_per_second": message.tokens_per_second,
        "tool_calls": message.tool_calls,
        "reasoning": message.reasoning,
        "reasoning_tokens": message.reasoning_tokens,
        "cached_tokens": message.cached_tokens,
        "cache_write_tokens": message.cache_write_tokens,
        "cache_saved": message.cache_saved,
        "citations": citations(message.annotations),
        "auto_reason": message.auto_reason,
        "images": [a for a in attachments if a.mime.startswith("image/")],
        "files": [a for a in attachments if not a.mime.startswith("image/")],
        "attachments": list(attachments),
        "versions": versions,
    }


def render_message(view: dict[str, Any]) -> str:
    """The markup of one message (`message_view`), sanitised where it holds model output."""
    return render_to_string("chat/_message.html", {"m": view})

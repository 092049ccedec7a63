"""How much of a conversation is stored and read: the caps on a message and on a conversation, and the
branch a reply answers, read from its leaf up only as far as the model's context could reach.

A conversation can hold thousands of long messages; a send must not read them all (2,000 messages of
30 KB took 1.8 s of server work per send). The branch is walked in PostgreSQL (a recursive query from the
leaf towards the root) and the walk stops once the messages it has passed weigh more bytes than the
model's context could hold at BYTES_PER_TOKEN: what comes back is bounded by the model, not by the
conversation. `chat.prompt.fit` then keeps, newest first, what fits by the token count. Sizes are
`octet_length`s, which PostgreSQL reads from the value's header without fetching its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings

from catalog.models import CatalogModel
from chat.models import Conversation, Message
from orweb import sql

# A token is at least one byte and rarely more than a few: 8 bytes a token reads every message that can
# fit, except in text of unusually long tokens, where the oldest ones that might have fitted are left out.
BYTES_PER_TOKEN = 8
# What a message weighs besides its text (its role, the per-message tokens of the prompt), so a walk over
# many tiny messages ends too.
MESSAGE_BYTES = 32

# Caps, each overridable in settings (ORWEB_CHAT_…).
MAX_MESSAGE_CHARS = 60_000  # under the websocket's 64 KB frame, so the clear error is this one
MAX_CONVERSATION_BYTES = 10 * 1024 * 1024
MAX_CONVERSATION_MESSAGES = 4_000
UNKNOWN_CONTEXT = 32_000  # tokens assumed for a model the catalog doesn't know (`orweb/auto*`)


def limit(name: str) -> int:
    """The cap `name` (e.g. "MAX_MESSAGE_CHARS"): settings.ORWEB_CHAT_<name>, else this module's default."""
    return int(getattr(settings, f"ORWEB_CHAT_{name}", globals()[name]))


@dataclass(frozen=True)
class Window:
    """What the conversation's model can take: its context and output limit in tokens (None if unknown)."""

    context: int | None
    max_completion: int | None


def _weight(alias: str) -> str:
    return f"octet_length({alias}.content) + coalesce(pg_column_size({alias}.tool_calls), 0) + {MESSAGE_BYTES}"


def branch_cte(start: str) -> str:
    """`branch(id, depth)`: the messages from `start` (an SQL expression for a message id) up towards the
    root, leaf at depth 1, until they weigh more than the conversation's model could take."""
    message, conversation, catalog = sql.table(Message), sql.table(Conversation), sql.table(CatalogModel)
    return f"""
branch AS (
    SELECT m.id, m.parent_id, 1 AS depth, {_weight("m")} AS size
    FROM {message} m WHERE m.id = {start} AND m.conversation_id = %(conversation)s
  UNION ALL
    SELECT m.id, m.parent_id, b.depth + 1, b.size + {_weight("m")}
    FROM branch b JOIN {message} m ON m.id = b.parent_id
    WHERE b.size < (
        SELECT coalesce(max(cm.context_length), %(unknown_context)s) * {BYTES_PER_TOKEN}
        FROM {conversation} c3 LEFT JOIN {catalog} cm ON cm.id = c3.model WHERE c3.id = %(conversation)s
    )
)"""


def branch_rows() -> str:
    """SQL for the `branch` messages, root first, each as [json_row, attachment ids]."""
    links = sql.table(Message.attachments.through)
    return f"""(
    SELECT json_agg(json_build_array(
        {sql.json_row(Message, "m")},
        (SELECT coalesce(array_agg(a.attachment_id ORDER BY a.attachment_id), '{{}}') FROM {links} a
         WHERE a.message_id = m.id)
    ) ORDER BY b.depth DESC)
    FROM branch b JOIN {sql.table(Message)} m ON m.id = b.id
)"""


def branch_params(conversation_id: int) -> dict[str, Any]:
    return {"conversation": conversation_id, "unknown_context": limit("UNKNOWN_CONTEXT")}


def messages(rows: list[Any] | None) -> list[Message]:
    """The messages of `branch_rows`, each with `attachment_ids`."""
    found = []
    for row, attachment_ids in rows or []:
        message = sql.instance(Message, row)
        message.attachment_ids = list(attachment_ids)
        found.append(message)
    return found


@cache
def _read_statement() -> str:
    return f"""
WITH RECURSIVE {branch_cte("%(leaf)s")}
SELECT cm.context_length, cm.max_completion_tokens, {branch_rows()}
FROM {sql.table(Conversation)} c LEFT JOIN {sql.table(CatalogModel)} cm ON cm.id = c.model
WHERE c.id = %(conversation)s
"""


def read_branch(conversation_id: int, leaf_id: int | None) -> tuple[Window, list[Message]]:
    """The conversation's model window and the messages from the root to `leaf_id` that its context could
    reach (root first, with `attachment_ids`): one statement."""
    found = sql.fetch(_read_statement(), {**branch_params(conversation_id), "leaf": leaf_id})
    if not found:
        raise Conversation.DoesNotExist
    [(context, max_completion, rows)] = found
    return Window(context, max_completion), messages(rows)


def stored_size(conversation_id: int) -> tuple[int, int]:
    """How many messages the conversation holds and how many bytes of text."""
    [(count, size)] = sql.fetch(
        f"SELECT count(*), coalesce(sum(octet_length(content)), 0) FROM {sql.table(Message)} "
        "WHERE conversation_id = %(conversation)s",
        {"conversation": conversation_id},
    )
    return count, size


def window(model: str) -> Window:
    """The window of `model` (unknown ids, like `orweb/auto`, have none)."""
    found = CatalogModel.objects.filter(pk=model).values_list("context_length", "max_completion_tokens").first()
    return Window(*found) if found else Window(None, None)


def size_refusal(count: int, size: int, adding: str) -> tuple[str, str] | None:
    """Why a conversation of `count` messages and `size` bytes of text can't take the message `adding` (and
    a reply): (code, message), or None."""
    most = limit("MAX_MESSAGE_CHARS")
    if len(adding) > most:
        return "too_long", f"A message can be at most {most:,} characters; this one has {len(adding):,}."
    if count + 2 > limit("MAX_CONVERSATION_MESSAGES") or size + len(adding.encode()) > limit("MAX_CONVERSATION_BYTES"):
        return (
            "conversation_full",
            f"This conversation is full (at most {limit('MAX_CONVERSATION_MESSAGES'):,} messages and "
            f"{limit('MAX_CONVERSATION_BYTES') // (1024 * 1024):,} MB of text); start a new chat to carry on.",
        )
    return None


@cache
def send_statement() -> str:
    """What a send reads, with the conversation row locked: whether the row changed between the statement's
    snapshot and its lock (then it is run again, now with a snapshot that sees the change), whether a reply
    is live, the stored size, the user messages under the shown leaf (the new message's versions), the
    model's window and the shown branch as far back as that window reaches: one statement."""
    message, conversation, catalog = sql.table(Message), sql.table(Conversation), sql.table(CatalogModel)
    return f"""
WITH RECURSIVE {branch_cte(f"(SELECT current_leaf_id FROM {conversation} WHERE id = %(conversation)s)")}
SELECT {sql.json_row(Conversation, "c")},
    c.xmin = (SELECT c2.xmin FROM {conversation} c2 WHERE c2.id = c.id),
    EXISTS (SELECT 1 FROM {message} l WHERE l.conversation_id = c.id AND l.status IN ('pending', 'streaming')),
    (SELECT json_build_array(count(*), coalesce(sum(octet_length(s.content)), 0))
     FROM {message} s WHERE s.conversation_id = c.id),
    (SELECT coalesce(array_agg(v.id ORDER BY v.created, v.id), '{{}}') FROM {message} v
     WHERE v.conversation_id = c.id AND v.parent_id IS NOT DISTINCT FROM c.current_leaf_id AND v.role = 'user'),
    cm.context_length, cm.max_completion_tokens,
    {branch_rows()}
FROM {conversation} c LEFT JOIN {catalog} cm ON cm.id = c.model
WHERE c.id = %(conversation)s AND c.user_id = %(user)s
FOR UPDATE OF c
"""

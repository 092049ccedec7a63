"""What a user can do to a conversation, as plain functions: the views and the websocket consumer call these.

Messages form a tree. Regenerate adds an assistant sibling, edit adds a user sibling; nothing is ever
overwritten, so every earlier version stays reachable. The branch shown runs root → `current_leaf`.
Functions that create an assistant message leave it `pending`: the stream runner (chat.runner) claims
pending messages and streams into them (the consumer starts it, or claims leftovers when a page connects).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from catalog.models import CatalogModel
from chat import history, prompt
from chat.models import Attachment, Conversation, Message
from chat.tools import TOOLS
from orweb import sql
from orweb.text import refusal, storable

MAX_COMPARE = 4


class ChatActionError(Exception):
    """An action that can't be done as asked: `code` for the websocket frame, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def create_conversation(
    user: Any,
    *,
    model: str,
    system_prompt: str = "",
    temperature: Decimal | None = None,
    max_tokens: int | None = None,
    tools: Sequence[str] = (),
    fallback_models: Sequence[str] = (),
    title: str = "",
    compare_group: uuid.UUID | None = None,
    reasoning: str = "",
    web_search: bool = False,
    pdf_engine: str = "pdf-text",
) -> Conversation:
    """A new, empty conversation. Unknown tool names are refused (the list is shown to the model)."""
    unknown = [name for name in tools if name not in TOOLS]
    if unknown:
        raise ChatActionError("bad_tool", f"Unknown tool: {', '.join(unknown)}")
    return Conversation.objects.create(
        user=user,
        model=model,
        system_prompt=system_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        tools=list(dict.fromkeys(tools)),
        fallback_models=[m for m in dict.fromkeys(fallback_models) if m and m != model],
        title=title[:200],
        compare_group=compare_group,
        reasoning=reasoning,
        web_search=web_search,
        pdf_engine=pdf_engine,
    )


def path_to(by_id: dict[int, Message], leaf_id: int | None) -> list[Message]:
    """The messages from the root to `leaf_id` (root first), walked in `by_id`: no query."""
    path: list[Message] = []
    node = by_id.get(leaf_id) if leaf_id else None
    while node is not None:
        path.append(node)
        node = by_id.get(node.parent_id) if node.parent_id else None
    path.reverse()
    return path


def branch_path(conversation: Conversation) -> list[Message]:
    """The messages shown: root → current_leaf, in one query."""
    if conversation.current_leaf_id is None:
        return []
    return path_to({m.pk: m for m in conversation.messages.all()}, conversation.current_leaf_id)


def versions_of(message: Message) -> QuerySet[Message]:
    """The message and its alternatives (same parent, same role), oldest first."""
    return Message.objects.filter(
        conversation_id=message.conversation_id, parent_id=message.parent_id, role=message.role
    ).order_by("created", "id")


def version_position(ids: Sequence[int], message_id: int) -> dict[str, int | None]:
    """Where `message_id` sits among `ids`, its versions oldest first: "version 2 of 3" and the ids of the
    versions before and after it. The one numbering of versions: pages, frames and sends all use it."""
    ids = list(ids) or [message_id]
    at = ids.index(message_id) if message_id in ids else 0
    return {
        "index": at + 1,
        "count": len(ids),
        "prev_id": ids[at - 1] if at > 0 else None,
        "next_id": ids[at + 1] if at + 1 < len(ids) else None,
    }


def version_info(message: Message) -> dict[str, int | None]:
    """`version_position` of a message, read from the database."""
    return version_position(versions_of(message).values_list("id", flat=True), message.pk)


def latest_leaf_under(message: Message) -> Message:
    """Follow the newest child down to a leaf, so switching to a version shows where it was last taken."""
    node = message
    while True:
        child = node.children.order_by("-created", "-id").first()
        if child is None:
            return node
        node = child


def switch_version(conversation: Conversation, message: Message) -> Message:
    """Show the branch through `message`; returns the new leaf."""
    if message.conversation_id != conversation.pk:
        raise ChatActionError("not_found", "Message not found.")
    leaf = latest_leaf_under(message)
    conversation.current_leaf = leaf
    conversation.save(update_fields=["current_leaf", "updated"])
    return leaf


def image_refusal(model: str) -> str | None:
    """Why `model` can't take images, or None. Unknown ids (e.g. `orweb/auto`) are left to the gateway."""
    found = CatalogModel.objects.filter(pk=model).first()
    if found is None or found.supports_images:
        return None
    return f"{found.name or found.id} reads text only; pick a model with image input to send images."


def _check_images(conversation: Conversation, has_images: bool) -> None:
    refusal = image_refusal(conversation.model) if has_images else None
    if refusal:
        raise ChatActionError("not_allowed", refusal)


def _require_idle(conversation: Conversation) -> None:
    if conversation.messages.filter(status__in=[Message.Status.PENDING, Message.Status.STREAMING]).exists():
        raise ChatActionError("busy", "A reply is still streaming; stop it or wait for it to finish.")


def _check_text(content: str, count: int, size: int) -> None:
    """Refuse a message PostgreSQL can't store, one too long, or one a full conversation can't take."""
    if not storable(content):
        raise ChatActionError("bad_text", refusal("A message"))
    too_big = history.size_refusal(count, size, content)
    if too_big:
        raise ChatActionError(*too_big)


def _check_fits(message: Message, window: history.Window, conversation: Conversation) -> None:
    """Refuse, before anything is stored, a message the model can't take even alone."""
    too_long = prompt.refusal(message, window, conversation)
    if too_long:
        raise ChatActionError("too_long", too_long)


def _new_reply(conversation: Conversation, parent: Message, status: str = Message.Status.PENDING) -> Message:
    reply = Message.objects.create(
        conversation=conversation,
        parent=parent,
        role=Message.Role.ASSISTANT,
        status=status,
        requested_model=conversation.model,
    )
    conversation.current_leaf = reply
    conversation.save(update_fields=["current_leaf", "updated"])
    return reply


def owned_attachments(conversation: Conversation, attachment_ids: Iterable[int]) -> list[Attachment]:
    ids = list(dict.fromkeys(int(i) for i in attachment_ids))
    if not ids:
        return []
    found = list(
        Attachment.objects.filter(pk__in=ids, user_id=conversation.user_id).filter(
            Q(conversation=conversation) | Q(conversation__isnull=True)
        )
    )
    if len(found) != len(ids):
        raise ChatActionError("not_found", "Attachment not found.")
    return found


@dataclass
class Sent:
    """What `send_and_read` wrote and what it read on the way: enough to start the reply and announce
    both messages without reading anything again."""

    user_message: Message
    reply: Message
    turns: list[Message]  # the branch the reply answers, root first, ending with `user_message`
    versions: dict[str, int | None]  # of `user_message`, as `version_info` gives them
    attachments: list[Attachment]  # of `user_message`, by id


def _message_columns() -> list[Any]:
    return [f for f in Message._meta.concrete_fields if not f.primary_key]


@cache
def _insert_turn() -> str:
    """A user message, the reply under it, and the conversation showing the reply: one statement."""
    fields = _message_columns()
    columns = ", ".join(f'"{f.column}"' for f in fields)
    asked = ", ".join(f"%(asked_{f.column})s" for f in fields)
    reply = ", ".join("(SELECT id FROM asked)" if f.attname == "parent_id" else f"%(reply_{f.column})s" for f in fields)
    return f"""
WITH asked AS (
    INSERT INTO {sql.table(Message)} ({columns}) VALUES ({asked}) RETURNING id
),
reply AS (
    INSERT INTO {sql.table(Message)} ({columns}) VALUES ({reply}) RETURNING id
),
shown AS (
    UPDATE {sql.table(Conversation)} SET current_leaf_id = (SELECT id FROM reply), updated = %(now)s
    WHERE id = %(conversation)s
)
SELECT asked.id, reply.id FROM asked, reply
"""


def _params(prefix: str, message: Message) -> dict[str, Any]:
    return {
        f"{prefix}_{f.column}": f.get_db_prep_save(getattr(message, f.attname), connection) for f in _message_columns()
    }


def _saved(message: Message, pk: int) -> Message:
    message.pk = pk
    message._state.adding = False
    message._state.db = connection.alias
    return message


@transaction.atomic
def send_and_read(
    conversation: Conversation,
    content: str,
    attachment_ids: Iterable[int] = (),
    *,
    reply_status: str = Message.Status.PENDING,
) -> Sent:
    """Append a user message to the shown branch and an assistant reply under it: pending, or already
    streaming when the caller runs it itself (chat.runner; then no other process can claim it). Nothing is
    stored for a message that is refused (unstorable, too long for the caps or the model, a full
    conversation, a reply still live).

    Only `pk` and `user_id` of `conversation` are used: the row is re-read, locked, and must belong to
    that user (Conversation.DoesNotExist otherwise). This runs before every reply, so it is two prepared
    statements (`orweb.sql`) instead of six ORM queries: one reads the conversation under its lock with
    what the send needs (`chat.history.send_statement`: the branch only as far back as the model's context
    reaches, however long the conversation), one writes both messages and moves the conversation to the
    reply. `turns` are fitted to the model's context (`chat.prompt.fit`) and each has `attachment_ids`."""
    params = {**history.branch_params(conversation.pk), "user": conversation.user_id}
    found = sql.fetch(history.send_statement(), params)
    if found and not found[0][1]:
        found = sql.fetch(history.send_statement(), params)
    if not found:
        raise Conversation.DoesNotExist
    [(row, _, live, (count, size), sibling_ids, context, max_completion, branch_rows)] = found
    conversation = sql.instance(Conversation, row)
    if live:
        raise ChatActionError("busy", "A reply is still streaming; stop it or wait for it to finish.")
    _check_text(content, count, size)
    attachments = sorted(owned_attachments(conversation, attachment_ids), key=lambda a: a.pk)
    if not content.strip() and not attachments:
        raise ChatActionError("empty", "Type a message first.")
    _check_images(conversation, any(a.mime.startswith("image/") for a in attachments))
    parent_id = conversation.current_leaf_id
    now = timezone.now()
    user_message = Message(
        conversation=conversation, parent_id=parent_id, role=Message.Role.USER, content=content, created=now
    )
    user_message.attachment_ids = [a.pk for a in attachments]
    window = history.Window(context, max_completion)
    _check_fits(user_message, window, conversation)
    turns = prompt.fit([*history.messages(branch_rows), user_message], window, conversation)
    reply = Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=reply_status,
        requested_model=conversation.model,
        created=now,
    )
    [(asked_id, reply_id)] = sql.fetch(
        _insert_turn(),
        {**_params("asked", user_message), **_params("reply", reply), "now": now, "conversation": conversation.pk},
    )
    _saved(user_message, asked_id)
    _saved(reply, reply_id).parent = user_message
    conversation.current_leaf_id, conversation.updated = reply_id, now
    if attachments:
        user_message.attachments.set(attachments)
        Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(conversation=conversation)
    versions = version_position([*sibling_ids, user_message.pk], user_message.pk)
    return Sent(user_message, reply, turns, versions, attachments)


def send(
    conversation: Conversation,
    content: str,
    attachment_ids: Iterable[int] = (),
    *,
    reply_status: str = Message.Status.PENDING,
) -> tuple[Message, Message]:
    """`send_and_read` for callers that need only the two new messages."""
    sent = send_and_read(conversation, content, attachment_ids, reply_status=reply_status)
    return sent.user_message, sent.reply


@transaction.atomic
def edit_and_resend(message: Message, content: str) -> tuple[Message, Message]:
    """A new version of user message `message` (a sibling: the old branch stays) and a pending reply to it."""
    if message.role != Message.Role.USER:
        raise ChatActionError("bad_target", "Only your own messages can be edited.")
    if not content.strip():
        raise ChatActionError("empty", "Type a message first.")
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    _require_idle(conversation)
    _check_text(content, *history.stored_size(conversation.pk))
    attachments = list(message.attachments.all())
    _check_images(conversation, any(a.mime.startswith("image/") for a in attachments))
    edited = Message(conversation=conversation, parent_id=message.parent_id, role=Message.Role.USER, content=content)
    edited.attachment_ids = [a.pk for a in attachments]
    _check_fits(edited, history.window(conversation.model), conversation)
    edited.save()
    edited.attachments.set(attachments)
    return edited, _new_reply(conversation, edited)


@transaction.atomic
def regenerate(message: Message) -> Message:
    """A new pending version of assistant message `message`; the earlier versions are kept."""
    if message.role != Message.Role.ASSISTANT or message.parent_id is None:
        raise ChatActionError("bad_target", "Only a reply can be regenerated.")
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    _require_idle(conversation)
    return _new_reply(conversation, message.parent)


@transaction.atomic
def continue_after_error(message: Message) -> Message:
    """Carry on an errored, incomplete or stopped reply in place: its text so far is kept and extended."""
    if message.role != Message.Role.ASSISTANT or message.status not in (
        Message.Status.ERROR,
        Message.Status.INCOMPLETE,
        Message.Status.STOPPED,
    ):
        raise ChatActionError("bad_target", "Only a reply that stopped early can be continued.")
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    _require_idle(conversation)
    message.status = Message.Status.PENDING
    message.error = ""
    message.requested_model = conversation.model
    message.save(update_fields=["status", "error", "requested_model"])
    conversation.current_leaf = message
    conversation.save(update_fields=["current_leaf", "updated"])
    return message


def rename(conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip()[:200]
    conversation.save(update_fields=["title", "updated"])
    return conversation


def delete(conversation: Conversation) -> None:
    """Delete a conversation and its messages. Its spend stays in the ledger, which doesn't point here."""
    conversation.delete()


def search(user: Any, q: str) -> QuerySet[Conversation]:
    """The user's conversations whose title or any message text contains `q` (case-insensitive); `q` must
    be storable (`orweb.text.storable`: PostgreSQL can't compare with the rest)."""
    q = q.strip()
    matches = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=q)
    return Conversation.objects.filter(user=user).filter(Q(title__icontains=q) | Exists(matches))


def start_compare(
    user: Any,
    prompt: str,
    models: Sequence[str],
    *,
    system_prompt: str = "",
    temperature: Decimal | None = None,
    max_tokens: int | None = None,
) -> list[tuple[Conversation, Message]]:
    """One prompt to 2–4 models: one conversation per model sharing a `compare_group`, each with a pending
    reply. The runners start when the compare page's sockets connect (chat.runner.start_pending)."""
    models = list(dict.fromkeys(m for m in models if m))
    if not 2 <= len(models) <= MAX_COMPARE:
        raise ChatActionError("bad_compare", f"Pick between 2 and {MAX_COMPARE} different models.")
    if not prompt.strip():
        raise ChatActionError("empty", "Type a message first.")
    group = uuid.uuid4()
    started = []
    with transaction.atomic():
        for model in models:
            conversation = create_conversation(
                user,
                model=model,
                system_prompt=system_prompt,
                temperature=temperature,
                max_tokens=max_tokens,
                compare_group=group,
            )
            _, reply = send(conversation, prompt)
            started.append((conversation, reply))
    return started


@transaction.atomic
def keep_compare(conversation: Conversation) -> Conversation:
    """ "Continue with this one": it becomes a normal conversation, the other columns are deleted
    (what they cost stays in the ledger)."""
    if conversation.compare_group is None:
        return conversation
    Conversation.objects.filter(user_id=conversation.user_id, compare_group=conversation.compare_group).exclude(
        pk=conversation.pk
    ).delete()
    conversation.compare_group = None
    conversation.save(update_fields=["compare_group", "updated"])
    return conversation

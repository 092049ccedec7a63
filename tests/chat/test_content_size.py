"""Bounded conversations: a message and a conversation have caps; a send reads only as much of a long
conversation as the model's context can take and sends the newest turns that fit; a refused send stores
nothing."""

from __future__ import annotations

import pytest
from django.db import connection

from catalog.models import CatalogModel
from chat import conversations, prompt
from chat.conversations import ChatActionError
from chat.models import Conversation, Message
from gateway.tokens import count_prompt_tokens
from tests.helpers.chat import MODEL

pytestmark = pytest.mark.django_db


def long_branch(conversation: Conversation, count: int, size: int) -> None:
    """`count` finished messages on one branch (user, assistant, ...), each `size` bytes of random hex (so
    PostgreSQL stores them out of line, as real long messages are), shown up to the last."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO chat_message (conversation_id, role, content, status, error, requested_model,
                served_model, provider, skipped, prompt_tokens, completion_tokens, cost, seq, tool_calls, created)
            SELECT %(conversation)s, CASE WHEN i %% 2 = 0 THEN 'user' ELSE 'assistant' END,
                left((SELECT string_agg(md5(random()::text || i || j), '') FROM generate_series(0, %(size)s / 32) j),
                     %(size)s),
                'complete', '', '', '', '', '[]', 0, 0, 0, 0, '[]', now() + i * interval '1 ms'
            FROM generate_series(0, %(count)s - 1) i
            """,
            {"conversation": conversation.pk, "count": count, "size": size},
        )
        cursor.execute(
            """
            UPDATE chat_message m SET parent_id = p.previous
            FROM (SELECT id, lag(id) OVER (ORDER BY id) AS previous FROM chat_message
                  WHERE conversation_id = %(conversation)s) p
            WHERE m.id = p.id
            """,
            {"conversation": conversation.pk},
        )
    leaf = Message.objects.filter(conversation=conversation).latest("id")
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=leaf)


@pytest.fixture
def reads(monkeypatch) -> list[Message]:
    """Every message read from the database, whichever way (the ORM or `orweb.sql`)."""
    seen: list[Message] = []
    from_db = Message.from_db.__func__

    def spy(cls, db, field_names, values):
        message = from_db(cls, db, field_names, values)
        seen.append(message)
        return message

    monkeypatch.setattr(Message, "from_db", classmethod(spy))
    return seen


def context_of(model: str) -> int:
    return CatalogModel.objects.get(pk=model).context_length


def test_a_send_in_a_huge_conversation_reads_only_what_the_model_can_take(conversation, owner, reads, settings):
    settings.ORWEB_CHAT_MAX_CONVERSATION_BYTES = 64 * 1024 * 1024  # as large as it may be made
    long_branch(conversation, 1000, 30_000)  # 30 MB of text
    context = context_of(MODEL)
    reads.clear()

    sent = conversations.send_and_read(conversation, "and what next?")
    history = prompt.context(sent.reply, sent.reply.conversation, owner, sent.turns).history

    assert len(reads) < 60  # the 1,000 stored messages are never all read
    assert sum(len(m.content) for m in reads) < context * 8 + 30_000
    assert history[-1] == {"role": "user", "content": "and what next?"}
    assert history[0]["role"] == "user" and len(history) > 2
    assert count_prompt_tokens(history) < context
    newest = list(Message.objects.filter(conversation=conversation).order_by("-id").values_list("content", flat=True))
    assert [turn["content"] for turn in history] == newest[2 : len(history) + 1][::-1] + ["and what next?"]


def test_a_regenerated_reply_in_a_huge_conversation_reads_only_what_the_model_can_take(conversation, owner, reads):
    long_branch(conversation, 1000, 30_000)
    reply = conversations.regenerate(Message.objects.filter(conversation=conversation).latest("id"))
    reads.clear()

    history = prompt.context(reply, conversation, owner).history

    assert len(reads) < 60
    assert history[-1]["role"] == "user" and count_prompt_tokens(history) < context_of(MODEL)


def test_the_newest_turns_that_fit_are_sent_starting_with_a_users(conversation, owner):
    CatalogModel.objects.filter(pk=MODEL).update(context_length=3000)
    conversation.max_tokens = 500
    conversation.save()
    for n in range(6):
        _, reply = conversations.send(conversation, f"question {n} " + "word " * 300)
        Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="answer " * 300)

    sent = conversations.send_and_read(conversation, "last question")
    history = prompt.context(sent.reply, sent.reply.conversation, owner, sent.turns).history

    assert history[0]["role"] == "user" and history[-1]["content"] == "last question"
    assert count_prompt_tokens(history) + 500 <= 3000
    first = int(history[0]["content"].split()[1])
    assert first > 0  # the oldest turns were left out, and no more would have fitted:
    earlier = [{"role": "user", "content": f"question {first - 1} "}, {"role": "assistant", "content": "answer " * 300}]
    assert count_prompt_tokens(earlier + history) + 500 > 3000


def test_a_message_too_long_for_the_models_context_is_refused_and_nothing_is_stored(conversation):
    CatalogModel.objects.filter(pk=MODEL).update(context_length=2000)

    with pytest.raises(ChatActionError) as refused:
        conversations.send(conversation, " ".join(f"w{i}" for i in range(3000)))
    assert refused.value.code == "too_long" and MODEL in refused.value.message
    assert not Message.objects.exists()
    assert Conversation.objects.get(pk=conversation.pk).current_leaf_id is None


def test_a_message_over_the_cap_is_refused_and_nothing_is_stored(conversation, settings):
    settings.ORWEB_CHAT_MAX_MESSAGE_CHARS = 100

    with pytest.raises(ChatActionError) as refused:
        conversations.send(conversation, "x" * 101)
    assert refused.value.code == "too_long" and "at most 100 characters" in refused.value.message
    assert not Message.objects.exists()
    conversations.send(conversation, "x" * 100)


@pytest.mark.parametrize(("cap", "value"), [("MESSAGES", 4), ("BYTES", 150)])
def test_a_full_conversation_takes_no_more_messages(conversation, settings, cap, value):
    setattr(settings, f"ORWEB_CHAT_MAX_CONVERSATION_{cap}", value)
    for text in ("a" * 60, "b" * 60):
        _, reply = conversations.send(conversation, text)
        Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)

    with pytest.raises(ChatActionError) as refused:
        conversations.send(conversation, "c" * 60)
    assert refused.value.code == "conversation_full" and "start a new chat" in refused.value.message
    assert Message.objects.count() == 4

"""The send step before the upstream call: what it reads and writes, in a fixed number of queries."""

from __future__ import annotations

import inspect
from decimal import Decimal
from types import SimpleNamespace

import pytest

from billing.models import Budget, Hold
from chat import consumers, conversations, frames, prompt, runner
from chat.conversations import ChatActionError
from chat.models import Message
from chat.outcomes import Outcome, Totals
from orweb.errors import BudgetExceeded
from tests.helpers.chat import MODEL

pytestmark = pytest.mark.django_db(transaction=True)

send_step = inspect.unwrap(consumers._send)
announcement = consumers._announcement


def finish(message: Message, content: str) -> None:
    Message.objects.filter(pk=message.pk).update(status=Message.Status.COMPLETE, content=content)


@pytest.fixture
def branched(conversation):
    """Two turns, the first reply regenerated and the shown branch on the second version; then a
    reply that errored and was continued after the user had already sent under it."""
    conversation.system_prompt = "Be brief."
    conversation.save()
    _, first = conversations.send(conversation, "one")
    finish(first, "old answer")
    second = conversations.regenerate(first)
    finish(second, "new answer")
    _, reply = conversations.send(conversation, "two")
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.ERROR, content="cut")
    _, later = conversations.send(conversation, "three")
    finish(later, "fine")
    conversations.continue_after_error(Message.objects.get(pk=reply.pk))
    finish(reply, "cut short")
    return conversation


def test_the_send_step_takes_a_fixed_number_of_queries(branched, owner, django_assert_max_num_queries):
    # BEGIN, the locked read, the write of both messages, COMMIT; the model's features (chat.surface);
    # then the reply's admission: what it checks, and its hold.
    with django_assert_max_num_queries(7):
        send_step(owner, branched.pk, "four", [])
    finish(Message.objects.filter(conversation=branched).latest("id"), "ok")
    for n in range(5):
        finish(send_step(owner, branched.pk, f"more {n}", [])[0].message, "ok")
    with django_assert_max_num_queries(7):
        send_step(owner, branched.pk, "five", [])


def test_what_a_send_returns_is_what_the_database_holds(branched):
    shown_before = type(branched).objects.get(pk=branched.pk).current_leaf_id
    sent = conversations.send_and_read(branched, "four")
    conversation = type(branched).objects.get(pk=branched.pk)

    for returned in (sent.user_message, sent.reply):
        stored = Message.objects.get(pk=returned.pk)
        for field in Message._meta.concrete_fields:
            assert getattr(returned, field.attname) == getattr(stored, field.attname), field.name
    assert sent.reply.parent_id == sent.user_message.pk
    assert sent.user_message.parent_id == shown_before
    assert conversation.current_leaf_id == sent.reply.pk
    assert conversation.updated == sent.reply.created
    for turn in sent.turns[:-1]:
        stored = Message.objects.get(pk=turn.pk)
        for field in Message._meta.concrete_fields:
            assert getattr(turn, field.attname) == getattr(stored, field.attname), field.name


def test_it_sends_the_shown_branch_and_announces_what_a_fresh_read_would(branched, owner, django_assert_num_queries):
    ctx, sent, sent_frames = send_step(owner, branched.pk, "four", [])
    with django_assert_num_queries(0):
        announce = announcement(sent)
    assert announce == sent_frames
    user_message = Message.objects.get(pk=announce[0]["message"]["id"])
    reply = Message.objects.get(pk=announce[1]["message"]["id"])

    assert ctx.history == prompt.context(reply, branched, owner).history
    assert [turn["content"] for turn in ctx.history] == ["Be brief.", "one", "new answer", "two", "cut short", "four"]
    assert announce[0] == frames.message_frame(user_message)
    assert ">2/2<" in announce[0]["message"]["html"]
    assert announce[1] == frames.message_frame(reply)
    assert reply.status == Message.Status.STREAMING


def test_it_refuses_a_send_while_a_reply_is_pending(conversation, owner):
    conversations.send(conversation, "one")

    with pytest.raises(ChatActionError) as refused:
        send_step(owner, conversation.pk, "two", [])
    assert refused.value.code == "busy"
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_the_send_step_admits_the_replys_first_call(conversation, owner):
    Budget.objects.create(user=owner, limit_usd=Decimal(5))

    ctx, _, _ = send_step(owner, conversation.pk, "hello", [])

    assert ctx.refused is None
    assert ctx.admission.requested_model == conversation.model
    assert ctx.admission.body["messages"] == ctx.history
    hold = Hold.objects.get(pk=ctx.admission.hold_id)
    assert hold.user == owner and hold.amount > 0 and hold.released_at is None


def test_a_send_the_budget_cannot_cover_keeps_the_refusal_for_the_reply(conversation, owner):
    Budget.objects.create(user=owner, limit_usd=Decimal(0))

    ctx, sent, _ = send_step(owner, conversation.pk, "hello", [])

    assert ctx.admission is None
    assert isinstance(ctx.refused, BudgetExceeded)
    assert not Hold.objects.exists()
    assert Message.objects.get(pk=sent.reply.pk).status == Message.Status.STREAMING


THINKING = SimpleNamespace(text="", details=[])


def test_finishing_a_reply_writes_its_row_and_adds_its_cost_to_the_conversation(conversation, owner):
    finish_step = inspect.unwrap(runner._finish)
    _, reply = conversations.send(conversation, "hi", reply_status=Message.Status.STREAMING)
    pump = SimpleNamespace(text="Hello there", seq=3)
    totals = Totals(
        prompt_tokens=5,
        completion_tokens=2,
        cost=Decimal("0.0012"),
        ttft_ms=40,
        generation_ms=500,
        served_model="openai/gpt-4o-mini",
        provider="OpenAI",
        skipped=[["x/y", "not allowed"]],
        tool_calls=[{"step": 0, "id": "c1", "name": "time", "arguments": "{}", "result": "noon"}],
    )

    done, wants_title, _ = finish_step(reply.pk, conversation.pk, pump, totals, Outcome(), owner, THINKING, MODEL)
    more = Totals(cost=Decimal("0.0003"))
    # A write retried after it had landed changes nothing; a continuation (claimed again) adds to it.
    assert finish_step(reply.pk, conversation.pk, pump, more, Outcome(), owner, THINKING, MODEL) is None
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.STREAMING)
    finish_step(reply.pk, conversation.pk, pump, more, Outcome(), owner, THINKING, MODEL)

    stored = Message.objects.get(pk=reply.pk)
    assert (stored.content, stored.seq, stored.status) == ("Hello there", 3, Message.Status.COMPLETE)
    assert (stored.prompt_tokens, stored.completion_tokens, stored.cost) == (5, 2, Decimal("0.0015"))
    assert stored.tool_calls == totals.tool_calls  # kept when a later step has none
    assert stored.skipped == [] and stored.served_model == ""  # the last write says what the last step saw
    assert type(conversation).objects.get(pk=conversation.pk).total_cost == Decimal("0.0015")
    assert done["conversation_cost"] == "0.0012" and done["conversation_cost_shown"] == "$0.0012"
    assert "<span>4.0 tok/s</span>" in done["html"] and "<span>$0.0012</span>" in done["html"]
    assert "skipped: x/y (not allowed)" in done["html"]
    assert wants_title is False  # the conversation has a title
    Message.objects.filter(pk=reply.pk).delete()
    assert finish_step(reply.pk, conversation.pk, pump, totals, Outcome(), owner, THINKING, MODEL) is None
    assert type(conversation).objects.get(pk=conversation.pk).total_cost == Decimal("0.0015")

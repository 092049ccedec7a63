"""The chat websocket end to end: consumer → runner → gateway → the simulator on a real socket."""

from __future__ import annotations

import asyncio
import base64
from decimal import Decimal

import pytest
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse

from billing.models import Budget, LedgerEntry
from chat import conversations, runner
from chat.consumers import ChatConsumer
from chat.models import Attachment, Conversation, Message
from tests.helpers.chat import TEXT_ONLY, Socket, deltas, reply_id, sent_chats

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulator", "drained")]

LONG = " ".join(f"w{i}" for i in range(120))


@database_sync_to_async
def reload(message_id: int) -> Message:
    return Message.objects.get(pk=message_id)


@database_sync_to_async
def chat_ledger() -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(source="chat").order_by("id"))


async def test_it_closes_for_anonymous_users(conversation):
    from django.contrib.auth.models import AnonymousUser

    socket = Socket(AnonymousUser(), conversation.pk)
    await socket.open()
    assert (await socket.communicator.receive_output())["code"] == 4401


async def test_it_closes_for_another_users_conversation(conversation, outsider):
    socket = Socket(outsider, conversation.pk)
    await socket.open()
    assert (await socket.communicator.receive_output())["code"] == 4403


async def test_it_closes_for_a_missing_conversation(owner, catalog):
    socket = Socket(owner, 999_999)
    await socket.open()
    assert (await socket.communicator.receive_output())["code"] == 4403


async def test_hostile_frames_get_error_frames_and_the_socket_stays_up(conversation, outsider):
    other = await database_sync_to_async(conversations.create_conversation)(outsider, model="openai/gpt-4o-mini")
    _, theirs = await database_sync_to_async(conversations.send)(other, "hi")
    socket = await Socket(conversation.user, conversation.pk).open()
    cases = [
        ("{not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ({"action": "fly"}, "unknown_action"),
        ({"no": "action"}, "unknown_action"),
        ({"action": "send", "content": "x" * (70 * 1024)}, "too_large"),
        ({"action": "send", "content": 5}, "bad_frame"),
        ({"action": "stop", "message_id": "1"}, "bad_frame"),
        ({"action": "stop", "message_id": theirs.pk}, "not_found"),
        ({"action": "regenerate", "message_id": theirs.pk}, "not_found"),
        ({"action": "resume", "message_id": theirs.pk, "after_seq": 0}, "not_found"),
    ]
    for frame, code in cases:
        await socket.send(frame)
        answer = await socket.receive()
        assert (answer["type"], answer["code"]) == ("error", code), frame
    await socket.communicator.send_to(bytes_data=b"\x00\x01")
    assert (await socket.receive())["code"] == "bad_frame"
    await socket.send({"action": "send", "content": "echo: still here"})
    done, _ = await socket.until("done")
    assert done["status"] == "complete"
    assert (await reload(theirs.pk)).status == Message.Status.PENDING
    await socket.close()


async def test_it_streams_numbered_deltas_and_saves_the_reply(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": f"echo: {LONG} [[sim tps=400]]"})
    done, frames = await socket.until("done")
    mid = reply_id(frames)
    got = deltas(frames, mid)
    assert [seq for seq, _ in got] == list(range(1, len(got) + 1))
    assert 1 < len(got) < 120, "deltas are coalesced, not one per token"
    assert "".join(text for _, text in got) == LONG
    assert done["status"] == "complete" and done["message_id"] == mid
    assert '<span class="msg-role">openai/gpt-4o-mini</span>' in done["html"]
    message = await reload(mid)
    assert message.content == LONG and message.seq == len(got)
    assert message.status == Message.Status.COMPLETE
    assert message.completion_tokens > 0 and message.cost > 0 and message.ttft_ms is not None
    assert message.tokens_per_second is not None and message.provider
    [entry] = await chat_ledger()
    assert entry.cost == message.cost and entry.status == "ok"
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert conversation.total_cost == message.cost
    assert Decimal(done["conversation_cost"]) == message.cost
    await socket.close()


@database_sync_to_async
def page(conversation: Conversation) -> str:
    client = Client()
    client.force_login(conversation.user)
    return client.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()


async def test_a_message_is_sent_in_the_markup_the_page_shows(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: **bold** and `code` [[sim tps=400]]"})
    done, frames = await socket.until("done")
    asked = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "user"][0]
    shown = await page(conversation)
    assert done["html"].startswith("<article") and "<strong>bold</strong>" in done["html"]
    assert done["html"] in shown
    assert asked["html"] in shown
    await socket.close()


async def test_stop_keeps_the_partial_reply_and_settles_it_cancelled(conversation, simulator):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "write a lot [[sim tokens=400 tps=50]]"})
    _, frames = await socket.until("delta")
    mid = frames[-1]["message_id"]
    await socket.until("delta", seq=3)
    await socket.send({"action": "stop", "message_id": mid})
    done, frames = await socket.until("done")
    assert done["status"] == "stopped"
    message = await reload(mid)
    assert message.status == Message.Status.STOPPED
    assert message.content and message.completion_tokens < 400
    [entry] = await chat_ledger()
    assert entry.status == "cancelled"
    assert message.cost == entry.cost
    await socket.close()


async def test_closing_the_tab_does_not_stop_the_reply(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": f"echo: {LONG} [[sim tps=300]]"})
    _, frames = await socket.until("delta")
    mid = frames[-1]["message_id"]
    await socket.close()
    await runner.drain()
    message = await reload(mid)
    assert message.status == Message.Status.COMPLETE
    assert message.content == LONG


async def test_a_reloaded_page_resumes_with_no_gap_and_no_duplicate(conversation):
    first = await Socket(conversation.user, conversation.pk).open()
    await first.send({"action": "send", "content": f"echo: {LONG} [[sim tps=200]]"})
    _, frames = await first.until("delta", seq=3)
    mid = reply_id(frames)
    await first.close()
    page_text = "".join(text for _, text in deltas(frames, mid))
    second = await Socket(conversation.user, conversation.pk).open()
    await second.send({"action": "resume", "message_id": mid, "after_seq": 3})
    done, frames = await second.until("done")
    rest = deltas(frames, mid)
    assert [seq for seq, _ in rest] == list(range(4, 4 + len(rest)))
    assert page_text + "".join(text for _, text in rest) == LONG
    await second.close()


async def test_resume_from_the_checkpointed_row(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "write [[sim tokens=400 tps=60]]"})
    _, frames = await socket.until("delta")
    mid = frames[-1]["message_id"]
    await socket.close()
    row = await reload(mid)
    async with asyncio.timeout(10):
        while row.seq == 0:
            await asyncio.sleep(0.05)
            row = await reload(mid)
    assert row.status == Message.Status.STREAMING and row.content
    page = await Socket(conversation.user, conversation.pk).open()
    await page.send({"action": "resume", "message_id": mid, "after_seq": row.seq})
    _, first = await page.until("delta", seq=row.seq + 2)
    await page.send({"action": "stop", "message_id": mid})
    _, frames = await page.until("done")
    rest = deltas(first + frames, mid)
    assert [seq for seq, _ in rest] == list(range(row.seq + 1, row.seq + 1 + len(rest)))
    assert row.content + "".join(text for _, text in rest) == (await reload(mid)).content
    await page.close()


async def test_resume_of_a_finished_reply_sends_it_whole(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: all done"})
    done, frames = await socket.until("done")
    await socket.send({"action": "resume", "message_id": done["message_id"], "after_seq": 0})
    _, answered = await socket.until("done", message_id=done["message_id"])
    message, again = [f for f in answered if f["type"] in ("message", "done")]  # a budget or title may come between
    assert message["type"] == "message" and message["message"]["status"] == "complete"
    assert "all done" in message["message"]["html"]
    assert again["type"] == "done"
    await socket.close()


async def test_two_tabs_get_identical_sequences(conversation):
    one = await Socket(conversation.user, conversation.pk).open()
    two = await Socket(conversation.user, conversation.pk).open()
    await one.send({"action": "send", "content": f"echo: {LONG} [[sim tps=400]]"})
    _, frames_one = await one.until("done")
    _, frames_two = await two.until("done")
    mid = reply_id(frames_one)
    assert deltas(frames_one, mid) == deltas(frames_two, mid)
    assert "".join(t for _, t in deltas(frames_two, mid)) == LONG
    await one.close()
    await two.close()


async def test_regenerate_keeps_earlier_versions_and_switch_shows_them(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "tell me something"})
    first, _ = await socket.until("done")
    await socket.send({"action": "regenerate", "message_id": first["message_id"]})
    second, frames = await socket.until("done")
    assert second["message_id"] != first["message_id"]
    announced = [f for f in frames if f["type"] == "message"][0]["message"]
    assert ">2/2<" in announced["html"] and f'data-switch="{first["message_id"]}"' in announced["html"]
    one, two = await reload(first["message_id"]), await reload(second["message_id"])
    assert one.parent_id == two.parent_id and one.content and two.content
    await socket.send({"action": "switch", "message_id": first["message_id"]})
    branch, _ = await socket.until("branch")
    assert branch["type"] == "branch" and branch["leaf_id"] == first["message_id"]
    assert [m["role"] for m in branch["messages"]] == ["user", "assistant"]
    await socket.close()


async def test_edit_makes_a_branch_and_the_old_one_stays(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: first"})
    _, frames = await socket.until("done")
    original = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "user"][0]
    await socket.send({"action": "edit", "message_id": original["id"], "content": "echo: second"})
    done, frames = await socket.until("done")
    edited = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "user"][0]
    assert edited["parent_id"] == original["parent_id"] and ">2/2<" in edited["html"]
    assert (await reload(done["message_id"])).content == "second"
    await socket.send({"action": "switch", "message_id": original["id"]})
    branch, _ = await socket.until("branch")
    assert [m["id"] for m in branch["messages"]][0] == original["id"]
    assert "first" in branch["messages"][1]["html"]
    await socket.close()


async def test_continue_after_an_error_extends_the_reply(conversation, simulator):
    simulator.fault("openai/gpt-4o-mini", "error_after=5")
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "tell me a story"})
    done, _ = await socket.until("done")
    assert done["status"] == "error" and done["error"]
    broken = await reload(done["message_id"])
    assert broken.status == Message.Status.ERROR and broken.content
    simulator.control("DELETE", "faults")
    await socket.send({"action": "continue", "message_id": broken.pk})
    done, frames = await socket.until("done")
    assert done["status"] == "complete" and done["message_id"] == broken.pk
    resumed = await reload(broken.pk)
    assert resumed.content.startswith(broken.content) and len(resumed.content) > len(broken.content)
    assert [s for s, _ in deltas(frames, broken.pk)][0] == broken.seq + 1
    assert resumed.cost > broken.cost
    await socket.close()


async def test_an_upstream_refusal_is_shown_on_the_message(conversation):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "hello [[sim status=403]]"})
    done, _ = await socket.until("done")
    assert done["status"] == "error" and done["error"]
    await socket.close()


async def test_the_tool_loop_runs_the_calculator_and_meters_each_step(owner, catalog):
    conversation = await database_sync_to_async(conversations.create_conversation)(
        owner, model="openai/gpt-4o-mini", tools=["calculator"]
    )
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": 'call:calculator({"expression": "6*7"})'})
    done, frames = await socket.until("done")
    [tool] = [f for f in frames if f["type"] == "tool"]
    assert tool["call"]["name"] == "calculator" and tool["call"]["result"] == "42"
    assert done["status"] == "complete"
    message = await reload(done["message_id"])
    assert "42" in message.content
    assert message.tool_calls[0]["result"] == "42"
    entries = await chat_ledger()
    assert len(entries) == 2
    assert message.cost == sum(e.cost for e in entries)
    await socket.close()


async def test_a_send_the_budget_cannot_cover_is_refused_before_any_call(conversation, simulator):
    await database_sync_to_async(Budget.objects.create)(user=conversation.user, limit_usd=Decimal(0))
    before = simulator.stats()["requests_total"]
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "hello"})
    notice, seen = await socket.until("notice")
    assert notice["code"] == "budget" and notice["restore"] is True
    assert "monthly budget of user olivia" in notice["message"] and "$0 left" in notice["message"]
    [branch] = [f for f in seen if f["type"] == "branch"]
    assert branch["messages"] == []
    assert not [f for f in seen if f["type"] in ("done", "error")]  # not a failed turn
    assert not await database_sync_to_async(Message.objects.filter(conversation=conversation).exists)()
    saved = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert saved.current_leaf_id is None
    assert simulator.stats()["requests_total"] == before
    assert await chat_ledger() == []
    await socket.close()


async def test_a_refused_regenerate_keeps_the_earlier_reply_and_shows_it(conversation, simulator):
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: first answer"})
    done, _ = await socket.until("done")
    await database_sync_to_async(Budget.objects.create)(user=conversation.user, limit_usd=Decimal(0))
    await socket.send({"action": "regenerate", "message_id": done["message_id"]})
    notice, seen = await socket.until("notice")
    assert notice["code"] == "budget" and notice["restore"] is False
    [branch] = [f for f in seen if f["type"] == "branch"]
    assert [m["id"] for m in branch["messages"]][-1] == done["message_id"]
    saved = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert saved.current_leaf_id == done["message_id"]
    assert await database_sync_to_async(Message.objects.filter(conversation=conversation).count)() == 2
    await socket.close()


async def test_an_image_to_a_text_only_model_is_refused_before_any_call(owner, catalog, simulator):
    conversation = await database_sync_to_async(conversations.create_conversation)(owner, model=TEXT_ONLY)
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    image = await database_sync_to_async(Attachment.objects.create)(
        user=owner, mime="image/png", size=len(png), sha256="x", data=png
    )
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "what is this?", "attachments": [image.pk]})
    error = await socket.receive()
    assert error["type"] == "error" and error["code"] == "not_allowed"
    assert "text only" in error["message"]
    assert simulator.stats()["requests_total"] == 0
    assert not await database_sync_to_async(Message.objects.filter(conversation=conversation).exists)()
    await socket.close()


async def test_an_image_goes_to_an_image_model_as_a_data_url(conversation, simulator):
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    image = await database_sync_to_async(Attachment.objects.create)(
        user=conversation.user, mime="image/png", size=len(png), sha256="x", data=png
    )
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: seen", "attachments": [image.pk]})
    done, _ = await socket.until("done")
    assert done["status"] == "complete"
    parts = sent_chats(simulator)[-1]["messages"][-1]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    await socket.close()


async def test_the_first_reply_titles_the_conversation(owner, catalog):
    conversation = await database_sync_to_async(conversations.create_conversation)(owner, model="openai/gpt-4o-mini")
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: hello"})
    title, _ = await socket.until("title")
    assert title["title"]
    saved = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert saved.title == title["title"]
    assert await database_sync_to_async(LedgerEntry.objects.filter(source="system").count)() == 1
    await socket.close()


async def test_pending_replies_start_when_a_page_connects(owner, catalog):
    [(one, reply_one), (two, reply_two)] = await database_sync_to_async(conversations.start_compare)(
        owner, "echo: side by side", ["openai/gpt-4o-mini", "anthropic/claude-3-haiku"]
    )
    left, right = await Socket(owner, one.pk).open(), await Socket(owner, two.pk).open()
    await left.send({"action": "resume", "message_id": reply_one.pk, "after_seq": 0})
    await right.send({"action": "resume", "message_id": reply_two.pk, "after_seq": 0})
    done_left, _ = await left.until("done")
    done_right, _ = await right.until("done")
    assert '<span class="msg-role">openai/gpt-4o-mini</span>' in done_left["html"]
    assert '<span class="msg-role">anthropic/claude-3-haiku</span>' in done_right["html"]
    assert (await reload(reply_two.pk)).content == "side by side"
    await left.close()
    await right.close()


async def test_a_frame_for_a_tab_that_just_left_is_dropped_not_raised():
    consumer = ChatConsumer()
    consumer.gone = False
    sent = []

    async def send(**frame):
        sent.append(frame)
        raise Disconnected("Attempt to send on a closed protocol")

    consumer.send = send
    await consumer.send_frame({"type": "delta", "seq": 1})
    await consumer.send_frame({"type": "delta", "seq": 2})

    assert len(sent) == 1

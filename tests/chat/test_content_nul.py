"""Text PostgreSQL can't store (NUL, unpaired surrogates): what people type is refused with a clear error
and nothing is stored; what tools and models write is stored with the character replaced, so a reply
always finishes and its conversation never stays busy."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat import conversations, titles
from chat.conversations import ChatActionError
from chat.models import Conversation, Message
from orweb.text import REPLACEMENT, pg_json, pg_text, storable
from tests.helpers.chat import MODEL, Socket


def test_text_with_nul_or_a_lone_surrogate_is_not_storable_and_is_made_storable():
    assert storable("plain, é, 😀") and not storable("a\x00b") and not storable("a\ud800b")
    assert pg_text("a\x00b\udfffc😀") == f"a{REPLACEMENT}b{REPLACEMENT}c😀"
    assert pg_json({"k\x00": ["x\x00", 1, None, {"y": "\ud800"}]}) == {
        f"k{REPLACEMENT}": [f"x{REPLACEMENT}", 1, None, {"y": REPLACEMENT}]
    }


@pytest.mark.django_db
@pytest.mark.parametrize("content", ["a\x00b", "a\ud800b"])
def test_a_message_with_nul_is_refused_and_nothing_is_stored(conversation, content):
    with pytest.raises(ChatActionError) as refused:
        conversations.send(conversation, content)
    assert refused.value.code == "bad_text" and "NUL" in refused.value.message
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_an_edit_with_nul_is_refused(conversation):
    asked, reply = conversations.send(conversation, "one")
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)

    with pytest.raises(ChatActionError) as refused:
        conversations.edit_and_resend(asked, "t\x00wo")
    assert refused.value.code == "bad_text"
    assert Message.objects.count() == 2


@pytest.mark.django_db(transaction=True)
async def test_a_models_title_with_nul_is_stored_storable(conversation, monkeypatch):
    async def nul_title(*_):
        return "Hi\x00there"

    monkeypatch.setattr(titles, "make_title", nul_title)
    await database_sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(title="")

    assert await titles.title_conversation(conversation.pk) == f"Hi{REPLACEMENT}there"
    assert (await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)).title == f"Hi{REPLACEMENT}there"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("simulator", "drained")
async def test_a_tool_result_with_nul_finishes_the_reply_and_frees_the_conversation(owner, catalog):
    conversation = await database_sync_to_async(conversations.create_conversation)(
        owner, model=MODEL, tools=["current_time"]
    )
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": 'call:current_time({"timezone": "\\u0000"})'})
    done, frames = await socket.until("done")

    assert done["status"] == "complete"
    [tool] = [f for f in frames if f["type"] == "tool"]
    assert tool["call"]["result"].startswith("error: Unknown time zone") and REPLACEMENT in tool["call"]["result"]
    stored = await database_sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert stored.status == Message.Status.COMPLETE and "\x00" not in stored.tool_calls[0]["result"]

    await socket.send({"action": "send", "content": "and now?"})
    again, _ = await socket.until("done", message_id=done["message_id"] + 2)
    assert again["status"] == "complete"
    await socket.close()

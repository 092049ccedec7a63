"""Only the tools a conversation enabled are offered to the model, and only offered tools run: a model
that asks for any other is answered with an error, and the tool never runs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from channels.db import database_sync_to_async

from chat import conversations, prompt, tools
from chat.models import Message
from chat.tools import run_offered
from tests.helpers.chat import MODEL, Socket


def test_a_tool_that_was_not_offered_is_answered_as_an_error_and_not_run(monkeypatch):
    ran = []
    clock = replace(tools.TOOLS["current_time"], run=lambda args: ran.append(args) or "noon")
    monkeypatch.setitem(tools.TOOLS, "current_time", clock)

    answer = run_offered(["calculator"], "current_time", "{}")

    assert answer == "error: the tool 'current_time' is not enabled in this conversation"
    assert ran == []
    assert run_offered(["calculator", "current_time"], "current_time", "{}") == "noon"
    assert run_offered(["calculator"], "calculator", '{"expression": "6*7"}') == "42"


@pytest.mark.django_db
def test_only_the_enabled_tools_are_offered(owner, catalog):
    conversation = conversations.create_conversation(owner, model=MODEL, tools=["calculator"])
    _, reply = conversations.send(conversation, "hi")
    ctx = prompt.context(reply, conversation, owner)

    offered = prompt.request(ctx, ctx.history).params["tools"]

    assert [t["function"]["name"] for t in offered] == ["calculator"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("simulator", "drained")
async def test_a_model_asking_for_a_tool_the_user_did_not_enable_gets_an_error(owner, catalog):
    conversation = await database_sync_to_async(conversations.create_conversation)(
        owner, model=MODEL, tools=["calculator"]
    )
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": 'call:current_time({"timezone": "Asia/Tokyo"})'})
    done, frames = await socket.until("done")

    [tool] = [f for f in frames if f["type"] == "tool"]
    assert tool["call"]["name"] == "current_time"
    assert tool["call"]["result"] == "error: the tool 'current_time' is not enabled in this conversation"
    assert done["status"] == "complete"
    stored = await database_sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert "+09:00" not in stored.content and "+09:00" not in str(stored.tool_calls)
    await socket.close()

"""A reply's final row is its text's only durable copy: a write the database refuses is retried (the text
kept in memory meanwhile), and it lands once."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from chat import runner
from chat.models import Message
from tests.helpers.chat import Socket, row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulator", "drained")]


async def test_a_final_write_the_database_refuses_is_retried_with_all_the_text(conversation, monkeypatch):
    write = runner._finish
    refused = []

    async def refuse_twice(*args):
        if len(refused) < 2:
            refused.append(args[0])
            raise OperationalError("the database went away")
        return await write(*args)

    monkeypatch.setattr(runner, "_finish", refuse_twice)
    monkeypatch.setattr(runner, "FINAL_RETRY_FIRST", 0.05)
    socket = await Socket(conversation.user, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: one two three four [[sim tps=200]]"})
    done, _ = await socket.until("done")

    message = await row(done["message_id"])
    assert refused == [message.pk, message.pk]
    assert (message.status, message.content) == (Message.Status.COMPLETE, "one two three four")
    assert message.cost > 0 and (await row(done["message_id"])).conversation_id == conversation.pk
    await socket.close()

"""Deactivating a person on the people page closes their open chat sockets at once (through the real ASGI
app), and leaves everyone else's open."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from chat import consumers, conversations
from tests.chat.conftest import _own_channel_layer, drained  # noqa: F401 (fixtures)
from tests.helpers.chat import MODEL
from tests.helpers.personas import close_code, signed_in, websocket_as

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulator", "drained")]


async def joined(socket) -> None:
    """Wait until the socket has joined its groups: it answers frames from then on."""
    await socket.send_to(text_data=json.dumps({"action": "resume", "message_id": 2**62, "after_seq": 0}))
    assert (await socket.receive_json_from(10))["code"] == "not_found"


async def closed_with(socket) -> tuple[str, int | None]:
    while (output := await socket.receive_output(10))["type"] == "websocket.send":
        frame = json.loads(output["text"])
        if frame["type"] == "error":
            return frame["code"], (await socket.receive_output(10)).get("code")
    return "", output.get("code")


async def test_deactivating_on_the_people_page_closes_a_live_socket(owner, owner_client, teammate, staff, catalog):
    mine = await database_sync_to_async(conversations.create_conversation)(owner, model=MODEL)
    theirs = await database_sync_to_async(conversations.create_conversation)(teammate, model=MODEL)
    async with (
        websocket_as(owner_client, f"/ws/chat/{mine.pk}/") as socket,
        websocket_as(await database_sync_to_async(signed_in)(teammate), f"/ws/chat/{theirs.pk}/") as other,
    ):
        await joined(socket)
        await joined(other)
        staff_client = await database_sync_to_async(signed_in)(staff)
        response = await database_sync_to_async(staff_client.post)(
            f"/console/people/{owner.pk}/active/", {"value": "off"}
        )
        assert response.status_code == 302
        assert await closed_with(socket) == ("signed_out", consumers.CLOSE_UNAUTHENTICATED)
        assert await close_code(other) is None

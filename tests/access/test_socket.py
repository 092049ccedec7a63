"""The chat websocket of a conversation opens for its owner only: everyone else, staff included, is
closed with 4403 before hearing a frame."""

from __future__ import annotations

import pytest

from tests.helpers.personas import close_code, websocket_as

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_FORBIDDEN = 4403


async def test_the_conversation_socket_opens_only_for_its_owner(side, owned, side_client):
    async with websocket_as(side_client, f"/ws/chat/{owned.conversation.pk}/") as socket:
        assert await close_code(socket) == (None if side == "owner" else CLOSE_FORBIDDEN)

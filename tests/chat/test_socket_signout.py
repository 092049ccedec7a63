"""A socket lives only as long as its sign-in, through the real ASGI app: deactivating a user or signing a
session out closes the sockets at once; and an action that spends re-checks the sign-in first, so a
socket whose sign-in ended some other way (a quiet update, a password change, a deleted session) spends
nothing."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session

from billing.models import LedgerEntry
from chat import consumers, conversations
from chat.models import Message
from tests.helpers.personas import close_code, signed_in, websocket_as

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("simulator", "drained")]


async def closed_with(socket) -> tuple[str, int | None]:
    """The error frame's code and the close code, skipping frames of the conversation before them."""
    while (output := await socket.receive_output(10))["type"] == "websocket.send":
        frame = json.loads(output["text"])
        if frame["type"] == "error":
            return frame["code"], (await socket.receive_output(10)).get("code")
    return "", output.get("code")


async def joined(socket) -> None:
    """Wait until the socket has joined its groups: it answers frames from then on."""
    await socket.send_to(text_data=json.dumps({"action": "resume", "message_id": 2**62, "after_seq": 0}))
    assert (await socket.receive_json_from(10))["code"] == "not_found"


@database_sync_to_async
def deactivate(user) -> None:
    user.is_active = False
    user.save()


@database_sync_to_async
def finished_exchange(conversation) -> Message:
    _, reply = conversations.send(conversation, "hi")
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="hello")
    return reply


@database_sync_to_async
def counts(conversation) -> tuple[int, int]:
    return Message.objects.filter(conversation=conversation).count(), LedgerEntry.objects.count()


async def test_deactivating_a_user_closes_their_open_sockets_at_once(conversation, owner, owner_client, teammate):
    theirs = await database_sync_to_async(conversations.create_conversation)(teammate, model=conversation.model)
    async with (
        websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as mine,
        websocket_as(await database_sync_to_async(signed_in)(teammate), f"/ws/chat/{theirs.pk}/") as other,
    ):
        await joined(mine)
        await joined(other)
        await deactivate(owner)
        assert await closed_with(mine) == ("signed_out", consumers.CLOSE_UNAUTHENTICATED)
        assert await close_code(other) is None


async def test_signing_out_closes_the_sockets_of_that_session_only(conversation, owner, owner_client):
    laptop = await database_sync_to_async(signed_in)(owner)
    async with (
        websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as phone_tab,
        websocket_as(laptop, f"/ws/chat/{conversation.pk}/") as laptop_tab,
    ):
        await joined(phone_tab)
        await joined(laptop_tab)
        await database_sync_to_async(owner_client.logout)()
        assert await closed_with(phone_tab) == ("signed_out", consumers.CLOSE_UNAUTHENTICATED)
        assert await close_code(laptop_tab) is None


def _quietly_deactivated(user) -> None:
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)  # no post_save: no close


def _password_changed(user) -> None:
    user.set_password("a-new-one-elsewhere")
    user.save()


def _session_deleted(user) -> None:
    Session.objects.all().delete()


@pytest.mark.parametrize("end", [_quietly_deactivated, _password_changed, _session_deleted])
async def test_a_send_after_the_sign_in_ended_stores_and_spends_nothing(conversation, owner, owner_client, end):
    async with websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as socket:
        await joined(socket)
        await database_sync_to_async(end)(owner)
        await socket.send_to(text_data=json.dumps({"action": "send", "content": "echo: on the house?"}))
        assert await closed_with(socket) == ("signed_out", consumers.CLOSE_UNAUTHENTICATED)
    assert await counts(conversation) == (0, 0)


@pytest.mark.parametrize(
    "action",
    [{"action": "regenerate"}, {"action": "edit", "content": "echo: again"}],
    ids=["regenerate", "edit"],
)
async def test_regenerate_and_edit_after_a_deactivation_spend_nothing(conversation, owner, owner_client, action):
    reply = await finished_exchange(conversation)
    user_message_id = reply.parent_id
    async with websocket_as(owner_client, f"/ws/chat/{conversation.pk}/") as socket:
        await joined(socket)
        await database_sync_to_async(_quietly_deactivated)(owner)
        target = reply.pk if action["action"] == "regenerate" else user_message_id
        await socket.send_to(text_data=json.dumps({**action, "message_id": target}))
        assert await closed_with(socket) == ("signed_out", consumers.CLOSE_UNAUTHENTICATED)
    assert await counts(conversation) == (2, 0)

"""Websocket helpers for chat tests: a browser tab as the consumer sees it, and readers of its frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from chat import conversations, titles
from chat.models import Message
from chat.routing import websocket_urlpatterns

MODEL = "openai/gpt-4o-mini"


def sent_chats(simulator: Any) -> list[dict[str, Any]]:
    """The bodies of the chat calls the simulator received, oldest first, title calls left out: a first
    reply titles its conversation in the background, so that call may arrive after a later send's."""
    bodies = [sent.get("body", sent) for sent in simulator.control("GET", "requests").json()]
    return [body for body in bodies if body.get("messages", [{}])[0].get("content") != titles.PROMPT]


TEXT_ONLY = "openai/gpt-3.5-turbo"


class Socket:
    """A browser tab on a conversation, as the consumer sees it."""

    def __init__(self, user: Any, conversation_id: int) -> None:
        self.communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/chat/{conversation_id}/")
        self.communicator.scope["user"] = user

    async def open(self) -> Socket:
        connected, _ = await self.communicator.connect()
        assert connected
        return self

    async def send(self, frame: Any) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        return await self.communicator.receive_json_from(timeout=timeout)

    async def until(self, kind: str, timeout: float = 20, **match: Any) -> tuple[dict[str, Any], list[dict]]:
        """Frames up to and including the first of type `kind` matching `match`; returns (it, all)."""
        seen = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.receive(timeout)
                seen.append(frame)
                if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame, seen

    async def close(self) -> None:
        await self.communicator.disconnect()


def deltas(frames: list[dict[str, Any]], message_id: int) -> list[tuple[int, str]]:
    return [(f["seq"], f["text"]) for f in frames if f["type"] == "delta" and f["message_id"] == message_id]


def reply_id(frames: list[dict[str, Any]]) -> int:
    """The id of the newest assistant message announced in `frames`."""
    return [f["message"]["id"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"][-1]


@database_sync_to_async
def new_reply(conversation) -> Message:
    """Send "hi" in `conversation`; its pending reply."""
    return conversations.send(conversation, "hi")[1]


@database_sync_to_async
def row(message_id: int) -> Message:
    """The message as stored now."""
    return Message.objects.get(pk=message_id)

"""Chat fixtures: the simulator's catalog, two users, a conversation, and websocket helpers."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import redis
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings

from chat import runner
from chat.routing import websocket_urlpatterns
from tests.gateway_core.metering_helpers import load_catalog

MODEL = "openai/gpt-4o-mini"
TEXT_ONLY = "openai/gpt-3.5-turbo"


@pytest.fixture(autouse=True, scope="session")
def _own_channel_layer():
    """Group names are Redis pub/sub channels built from database ids, and pub/sub ignores the database
    number: another test run on the same Redis server would hear our conversations. A prefix of our own
    keeps frames apart."""
    from channels.layers import channel_layers

    config = settings.CHANNEL_LAYERS["default"].setdefault("CONFIG", {})
    config["prefix"] = f"test-chat-{uuid.uuid4().hex[:12]}"
    channel_layers.backends.clear()
    yield


@pytest.fixture(autouse=True)
def _clean_redis():
    """Rate-limit counters and delta lists live in Redis: each test starts with none."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("orweb:*", "chat:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    client.close()


@pytest.fixture
def catalog(transactional_db):
    load_catalog()


@pytest.fixture
def ann(transactional_db, django_user_model):
    return django_user_model.objects.create_user("ann", password="x")


@pytest.fixture
def bob(transactional_db, django_user_model):
    return django_user_model.objects.create_user("bob", password="x")


@pytest.fixture
def conversation(ann, catalog):
    from chat.conversations import create_conversation

    return create_conversation(ann, model=MODEL, title="Test chat")


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


@pytest.fixture
async def drained():
    """Waits for every runner and background job when the test ends, before the database is flushed,
    then unsubscribes the test loop's stop listener."""
    yield
    await runner.drain()
    await runner.stop_listening()


def deltas(frames: list[dict[str, Any]], message_id: int) -> list[tuple[int, str]]:
    return [(f["seq"], f["text"]) for f in frames if f["type"] == "delta" and f["message_id"] == message_id]


def reply_id(frames: list[dict[str, Any]]) -> int:
    """The id of the newest assistant message announced in `frames`."""
    return [f["message"]["id"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"][-1]

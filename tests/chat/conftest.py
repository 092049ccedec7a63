"""Chat fixtures: the owner's conversation, a channel layer of our own, and waiting for the runners."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings

from chat import runner, stopping
from tests.helpers.chat import MODEL


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


@pytest.fixture
def conversation(owner, catalog):
    from chat.conversations import create_conversation

    return create_conversation(owner, model=MODEL, title="Test chat")


@pytest.fixture
async def drained():
    """Waits for every runner and background job when the test ends, before the database is flushed,
    then unsubscribes the test loop's stop listener."""
    yield
    await runner.drain()
    await stopping.stop_listening()

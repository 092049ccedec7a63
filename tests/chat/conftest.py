"""Chat fixtures: the owner's conversation, a channel layer of our own, waiting for the runners, and a
Redis server of a test's own to break."""

from __future__ import annotations

import copy
import uuid

import pytest
from django.conf import settings

from chat import runner, stopping
from tests.helpers.chat import MODEL
from tests.helpers.servers import RedisServer


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


def _forget_redis_clients() -> None:
    """Drop every cached client and channel layer, so the next use connects to the current REDIS_URL."""
    from channels.layers import channel_layers

    from chat import broadcast
    from orweb import redis_clients

    channel_layers.backends.clear()
    redis_clients._async_clients.clear()
    broadcast._publishers.clear()


@pytest.fixture
async def own_redis(tmp_path, settings):
    """A redis-server of this test's own, which it may kill -9 and restart: REDIS_URL, the channel layer
    and the Redis clients all point at it. Every reply and job is drained before it goes away."""
    server = RedisServer(tmp_path)
    server.start()
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"] = [server.url]
    settings.REDIS_URL = server.url
    settings.CHANNEL_LAYERS = layers
    _forget_redis_clients()
    yield server
    await runner.drain()
    await stopping.stop_listening()
    server.kill()
    _forget_redis_clients()

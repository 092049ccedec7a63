"""Chat fixtures: the simulator's catalog, two users, a conversation, and websocket helpers."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings

from chat import runner, stopping
from tests.helpers.chat import MODEL
from tests.helpers.metering import load_catalog


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


@pytest.fixture
async def drained():
    """Waits for every runner and background job when the test ends, before the database is flushed,
    then unsubscribes the test loop's stop listener."""
    yield
    await runner.drain()
    await stopping.stop_listening()

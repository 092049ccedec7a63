"""chat.sweep: replies left "streaming" by a process that died are closed as incomplete, with all the text
that was relayed, within a minute or so; live ones (lease held, or a recent checkpoint) are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat import conversations
from chat.deltas import deltas_key
from chat.lease import lease_key
from chat.models import Message
from chat.sweep import STALE_AFTER, sweep_orphans
from tests.conftest import SIM_KEY, database_url

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
STALE = STALE_AFTER + timedelta(seconds=1)


@pytest.fixture
def client():
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    client.close()


def streaming_reply(
    conversation, *, age: timedelta, checkpointed: timedelta | None = None, content: str = "Hello", seq: int = 1
) -> Message:
    """A streaming reply created `age` ago, last checkpointed `checkpointed` ago (never if None)."""
    _, reply = conversations.send(conversation, "hi")
    now = timezone.now()
    Message.objects.filter(pk=reply.pk).update(
        status=Message.Status.STREAMING,
        content=content,
        seq=seq,
        created=now - age,
        checkpointed=None if checkpointed is None else now - checkpointed,
    )
    return reply


def test_it_marks_an_orphaned_reply_incomplete_with_the_text_stored_after_its_checkpoint(conversation, client):
    reply = streaming_reply(conversation, age=STALE * 3, checkpointed=STALE)
    client.rpush(deltas_key(reply.pk), "1\tHello", "2\t wor", "3\tld")
    assert sweep_orphans() == 1
    reply.refresh_from_db()
    assert (reply.status, reply.content, reply.seq) == (Message.Status.INCOMPLETE, "Hello world", 3)
    assert reply.error


def test_a_reply_never_checkpointed_is_judged_by_when_it_was_created(conversation):
    reply = streaming_reply(conversation, age=STALE)
    assert sweep_orphans() == 1
    reply.refresh_from_db()
    assert reply.status == Message.Status.INCOMPLETE


def test_it_leaves_a_reply_whose_runner_holds_the_lease(conversation, client):
    reply = streaming_reply(conversation, age=STALE * 5, checkpointed=STALE * 5)
    client.set(lease_key(reply.pk), "1", ex=60)
    assert sweep_orphans() == 0
    reply.refresh_from_db()
    assert reply.status == Message.Status.STREAMING


def test_a_reply_checkpointed_recently_is_live_even_without_its_lease(conversation):
    """After a Redis restart every lease is gone until its runner's next refresh."""
    reply = streaming_reply(conversation, age=STALE * 5, checkpointed=timedelta(seconds=2))
    assert sweep_orphans() == 0
    reply.refresh_from_db()
    assert reply.status == Message.Status.STREAMING


def test_it_leaves_a_reply_that_just_started(conversation):
    reply = streaming_reply(conversation, age=timedelta(seconds=5))
    assert sweep_orphans() == 0
    reply.refresh_from_db()
    assert reply.status == Message.Status.STREAMING


def test_it_leaves_finished_replies_alone(conversation):
    reply = streaming_reply(conversation, age=STALE * 5)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)
    assert sweep_orphans() == 0
    reply.refresh_from_db()
    assert reply.status == Message.Status.COMPLETE and not reply.error


def test_a_reply_that_cannot_be_swept_does_not_stop_the_others(conversation, client):
    bad = streaming_reply(conversation, age=STALE)
    client.set(deltas_key(bad.pk), "not a list")  # reading its deltas fails (WRONGTYPE)
    other = conversations.create_conversation(conversation.user, model=conversation.model)
    good = streaming_reply(other, age=STALE)
    assert sweep_orphans() == 1
    bad.refresh_from_db()
    good.refresh_from_db()
    assert (bad.status, good.status) == (Message.Status.STREAMING, Message.Status.INCOMPLETE)


def test_with_redis_unreachable_it_sweeps_from_the_checkpoint(conversation, settings):
    reply = streaming_reply(conversation, age=STALE, content="Hello", seq=1)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert sweep_orphans() == 1
    reply.refresh_from_db()
    assert (reply.status, reply.content, reply.seq) == (Message.Status.INCOMPLETE, "Hello", 1)


RUN_A_REPLY = """
import asyncio, sys
import django
django.setup()
from django.conf import settings
settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = sys.argv[2]  # as this run's conftest does
from chat import runner

async def main():
    assert await runner.start(int(sys.argv[1]))
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_reply_whose_process_was_killed_is_finished_with_all_the_text_it_relayed(conversation, client, simulator):
    words = " ".join(f"w{i}" for i in range(300))
    _, reply = conversations.send(conversation, f"echo: {words} [[sim tps=40]]")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "OPENROUTER_BASE_URL": simulator.base_url,
        "OPENROUTER_API_KEY": SIM_KEY,
    }
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    process = subprocess.Popen([sys.executable, "-c", RUN_A_REPLY, str(reply.pk), prefix], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while Message.objects.get(pk=reply.pk).seq < 3:  # streaming, and checkpointed
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    assert Message.objects.get(pk=reply.pk).status == Message.Status.STREAMING
    assert sweep_orphans() == 0  # its lease and its checkpoint are fresh yet
    client.delete(lease_key(reply.pk))  # as LEASE_TTL seconds later
    assert sweep_orphans(now=timezone.now() + STALE) == 1

    reply.refresh_from_db()
    relayed = [row.split("\t", 1) for row in client.lrange(deltas_key(reply.pk), 0, -1)]
    assert reply.status == Message.Status.INCOMPLETE
    assert (reply.content, reply.seq) == ("".join(text for _, text in relayed), int(relayed[-1][0]))
    assert words.startswith(reply.content) and reply.content != words

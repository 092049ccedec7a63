"""chat.sweep: replies left "streaming" by a process that died are closed as incomplete."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from chat import conversations
from chat.deltas import deltas_key
from chat.models import Message
from chat.runner import lease_key
from chat.sweep import ORPHAN_AFTER, sweep_orphans

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client():
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    client.close()


def streaming_reply(conversation, *, age: timedelta, content: str = "Hello", seq: int = 1) -> Message:
    _, reply = conversations.send(conversation, "hi")
    Message.objects.filter(pk=reply.pk).update(
        status=Message.Status.STREAMING, content=content, seq=seq, created=timezone.now() - age
    )
    return reply


def test_it_marks_an_orphaned_reply_incomplete_with_the_text_stored_after_its_checkpoint(conversation, client):
    reply = streaming_reply(conversation, age=ORPHAN_AFTER + timedelta(seconds=1))
    client.rpush(deltas_key(reply.pk), "1\tHello", "2\t wor", "3\tld")
    assert sweep_orphans() == 1
    reply.refresh_from_db()
    assert (reply.status, reply.content, reply.seq) == (Message.Status.INCOMPLETE, "Hello world", 3)
    assert reply.error


def test_it_leaves_a_reply_whose_runner_holds_the_lease(conversation, client):
    reply = streaming_reply(conversation, age=ORPHAN_AFTER * 5)
    client.set(lease_key(reply.pk), "1", ex=60)
    assert sweep_orphans() == 0
    reply.refresh_from_db()
    assert reply.status == Message.Status.STREAMING


def test_it_leaves_a_reply_that_just_started(conversation):
    reply = streaming_reply(conversation, age=timedelta(seconds=5))
    assert sweep_orphans() == 0
    reply.refresh_from_db()
    assert reply.status == Message.Status.STREAMING


def test_it_leaves_finished_replies_alone(conversation):
    reply = streaming_reply(conversation, age=ORPHAN_AFTER * 5)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)
    assert sweep_orphans() == 0
    reply.refresh_from_db()
    assert reply.status == Message.Status.COMPLETE and not reply.error

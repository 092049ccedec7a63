"""Replies orphaned by a process that died mid-stream: still "streaming" in the database, with nobody
streaming them. A live runner holds a lease in Redis and touches its row at least every LEASE_REFRESH
seconds (chat.lease); a reply with neither (no lease, and no checkpoint for longer than LEASE_TTL) is
marked incomplete, keeping all the text that was relayed (the row's checkpoint plus the deltas stored
after it), and its tabs are told. Run every SWEEP_EVERY seconds (orweb.schedules), a dead process's
replies are finished within LEASE_TTL + SWEEP_EVERY of its death.

Each reply is swept on its own: one that fails is logged and left for the next sweep, never stopping the
others. With Redis unreachable the checkpoint alone decides (a live runner still touches its row) and the
text is the checkpoint's.

What the dead process had reserved with the gateway is released by billing's expired-hold sweep.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat import frames
from chat.deltas import deltas_key
from chat.lease import LEASE_TTL, lease_key
from chat.models import Message
from orweb.redis_clients import sync_client

log = logging.getLogger(__name__)

SWEEP_EVERY = 30
STALE_AFTER = timedelta(seconds=LEASE_TTL)
ORPHAN_ERROR = "The reply was cut off: the server streaming it stopped."
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


def _stored_tail(client: redis.Redis, message: Message) -> tuple[str, int]:
    """The deltas after the row's checkpoint that follow on from it without a gap: (text, last seq)."""
    text, seq = "", message.seq
    for row in client.lrange(deltas_key(message.pk), 0, -1):
        number, _, piece = row.partition("\t")
        if number.isdigit() and int(number) == seq + 1:
            text, seq = text + piece, seq + 1
    return text, seq


def _relayed(client: redis.Redis, message: Message) -> tuple[str, int] | None:
    """The reply's stored tail, or None if its runner still holds the lease; with Redis unreachable, no
    tail (the checkpoint has been recent-or-not on its own)."""
    try:
        if client.exists(lease_key(message.pk)):
            return None
        return _stored_tail(client, message)
    except _UNREACHABLE:
        log.warning("Redis unreachable: sweeping message %s from its checkpoint alone", message.pk)
        return "", message.seq


def _sweep_one(client: redis.Redis, message: Message) -> bool:
    relayed = _relayed(client, message)
    if relayed is None:
        return False
    tail, seq = relayed
    # Conditional on the row as read: a checkpoint in between means someone is streaming it after all.
    updated = Message.objects.filter(
        pk=message.pk, status=Message.Status.STREAMING, seq=message.seq, checkpointed=message.checkpointed
    ).update(status=Message.Status.INCOMPLETE, content=message.content + tail, seq=seq, error=ORPHAN_ERROR)
    if updated != 1:
        return False
    message = Message.objects.select_related("conversation").get(pk=message.pk)
    done = frames.done_frame(message, message.conversation.total_cost)
    try:
        async_to_sync(get_channel_layer().group_send)(
            frames.conversation_group(message.conversation_id), {"type": "chat.frame", "frame": done}
        )
    except (redis.RedisError, OSError):
        log.warning("could not tell the tabs of message %s it was swept (a reload shows it)", message.pk)
    return True


def sweep_orphans(now: datetime | None = None) -> int:
    """Mark orphaned streaming replies incomplete; returns how many."""
    cutoff = (now or timezone.now()) - STALE_AFTER
    client = sync_client()
    stale = Message.objects.filter(status=Message.Status.STREAMING).alias(alive=Coalesce("checkpointed", "created"))
    swept = 0
    for message in stale.filter(alive__lt=cutoff):
        try:
            swept += _sweep_one(client, message)
        except Exception:
            log.exception("could not sweep message %s; leaving it for the next sweep", message.pk)
    return swept

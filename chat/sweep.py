"""Replies orphaned by a process that died mid-stream: still "streaming" in the database, with nobody
streaming them. A live runner holds a lease in Redis (chat.runner, refreshed every LEASE_REFRESH seconds,
expiring after LEASE_TTL); a reply older than ORPHAN_AFTER without one is marked incomplete, keeping the
text its tabs already saw (the row's checkpoint plus the deltas stored after it), and its tabs are told.

What the dead process had reserved with the gateway is released by billing's expired-hold sweep.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from chat import frames
from chat.deltas import deltas_key
from chat.models import Message
from chat.runner import lease_key
from orweb.redis_clients import sync_client

ORPHAN_AFTER = timedelta(minutes=2)
ORPHAN_ERROR = "The reply was cut off: the server streaming it stopped."


def _stored_tail(client: redis.Redis, message: Message) -> tuple[str, int]:
    """The deltas after the row's checkpoint that follow on from it without a gap: (text, last seq)."""
    text, seq = "", message.seq
    for row in client.lrange(deltas_key(message.pk), 0, -1):
        number, _, piece = row.partition("\t")
        if int(number) == seq + 1:
            text, seq = text + piece, seq + 1
    return text, seq


def sweep_orphans(now: datetime | None = None) -> int:
    """Mark orphaned streaming replies incomplete; returns how many."""
    cutoff = (now or timezone.now()) - ORPHAN_AFTER
    client = sync_client()
    swept = 0
    for message in Message.objects.filter(status=Message.Status.STREAMING, created__lt=cutoff):
        if client.exists(lease_key(message.pk)):
            continue
        tail, seq = _stored_tail(client, message)
        # Conditional on the row as read: a checkpoint in between means someone is streaming it after all.
        updated = Message.objects.filter(pk=message.pk, status=Message.Status.STREAMING, seq=message.seq).update(
            status=Message.Status.INCOMPLETE, content=message.content + tail, seq=seq, error=ORPHAN_ERROR
        )
        if updated != 1:
            continue
        swept += 1
        message = Message.objects.select_related("conversation").get(pk=message.pk)
        done = frames.done_frame(message, message.conversation.total_cost)
        async_to_sync(get_channel_layer().group_send)(
            frames.conversation_group(message.conversation_id), {"type": "chat.frame", "frame": done}
        )
    return swept

"""A streaming reply's row, saved about once a second so a crash loses at most that much: the checkpoints
of every reply of the process go to the database together, in one statement.

A checkpoint also stamps the row's `checkpointed` (chat.sweep reads it as a sign of life), only ever lands
on a row still streaming (so a late one can't undo a final row), and one the database refused is tried
again with the next batch unless a newer one replaced it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.db.models.functions import Now

from chat.models import Message
from orweb import sql
from orweb.aio import db, one_per_loop

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1.0


class Checkpoints:
    """The checkpoints of every reply of this process, saved together about once a second in one database
    hop (200 replies streaming = one hop a second, not 200). A row's content and seq are always saved
    together; extra fields (tool calls) ride along with the next batch."""

    def __init__(self) -> None:
        self._dirty: dict[int, tuple[str, int, dict[str, Any]]] = {}
        self._saving: dict[int, asyncio.Task] = {}
        self._settled: set[int] = set()  # replies whose final row is being written: no checkpoint retried
        self._task: asyncio.Task | None = None

    def put(self, message_id: int, text: str, seq: int, fields: dict[str, Any]) -> None:
        previous = self._dirty.get(message_id)
        self._dirty[message_id] = (text, seq, {**previous[2], **fields} if previous else fields)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while self._dirty:
            await asyncio.sleep(CHECKPOINT_EVERY)
            batch, self._dirty = self._dirty, {}
            save = asyncio.ensure_future(db(_save)(batch))
            self._saving.update(dict.fromkeys(batch, save))
            try:
                await save
            except Exception as exc:
                log.warning("could not checkpoint %s replies (trying again): %r", len(batch), exc)
                for message_id, checkpoint in batch.items():
                    if message_id not in self._dirty and message_id not in self._settled:
                        self._dirty[message_id] = checkpoint
            finally:
                for message_id in batch:
                    if self._saving.get(message_id) is save:
                        del self._saving[message_id]

    async def settle(self, message_id: int) -> None:
        """Drop the reply's unsaved checkpoint and wait for one being saved: after this, no checkpoint can
        overwrite what the caller writes (the final row)."""
        self._settled.add(message_id)
        try:
            self._dirty.pop(message_id, None)
            saving = self._saving.get(message_id)
            if saving is not None:
                await asyncio.wait([saving])
            self._dirty.pop(message_id, None)
        finally:
            self._settled.discard(message_id)
        if not self._dirty and not self._saving and self._task is not None:
            self._task.cancel()


# One statement for every reply's checkpoint: the ORM's bulk_update builds a CASE per row and field,
# ~30 ms of Python for 200 replies, held on the GIL while the loop waits to relay their deltas.
_CHECKPOINT = """
UPDATE chat_message m SET content = v.content, seq = v.seq, checkpointed = now()
FROM unnest(%(ids)s::bigint[], %(contents)s::text[], %(seqs)s::integer[]) AS v(id, content, seq)
WHERE m.id = v.id AND m.status = 'streaming'
RETURNING m.id
"""


def _save(batch: dict[int, tuple[str, int, dict[str, Any]]]) -> None:
    plain = [(mid, text, seq) for mid, (text, seq, fields) in batch.items() if not fields]
    if plain:
        ids, contents, seqs = map(list, zip(*plain, strict=True))
        sql.fetch(_CHECKPOINT, {"ids": ids, "contents": contents, "seqs": seqs})
    for mid, (text, seq, fields) in batch.items():
        if fields:
            Message.objects.filter(pk=mid, status=Message.Status.STREAMING).update(
                content=text, seq=seq, checkpointed=Now(), **fields
            )


_checkpoints: dict[int, Checkpoints] = {}


def checkpoints() -> Checkpoints:
    """This event loop's Checkpoints."""
    return one_per_loop(_checkpoints, Checkpoints)

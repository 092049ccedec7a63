"""A reply's text on its way to the tabs: numbered deltas, paced, and kept in Redis for late joiners.

Each delta is appended to the Redis list `chat:msg:<id>:deltas` *before* it is published (one script
call, `chat.broadcast`), so a tab that joins the group and then reads the list misses nothing (it drops
seqs it already has). Deltas are coalesced to one frame per COALESCE seconds, spaced further apart when
the process streams more than FRAMES_PER_SECOND allows (`frame_interval`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from chat import frames
from chat.broadcast import group_publish
from chat.checkpoints import checkpoints
from orweb.redis_clients import async_client

COALESCE = 0.03
FRAMES_PER_SECOND = 3300  # what one process relays before its replies' frames space out (bench/relay.py)
MAX_INTERVAL = 0.1
DELTAS_TTL = 3600

_streaming: set[int] = set()  # the messages this process is streaming (an open DeltaPump each)


def deltas_key(message_id: int) -> str:
    return f"chat:msg:{message_id}:deltas"


async def deltas_after(message_id: int, after_seq: int) -> list[tuple[int, str]]:
    """The stored deltas of a message with seq > after_seq, in order."""
    rows = await async_client().lrange(deltas_key(message_id), 0, -1)
    found = []
    for row in rows:
        seq, _, text = row.partition("\t")
        if int(seq) > after_seq:
            found.append((int(seq), text))
    return found


def frame_interval() -> float:
    """Seconds between two frames of one reply: COALESCE, or longer while this process streams so many
    replies that COALESCE would exceed FRAMES_PER_SECOND in all (at most MAX_INTERVAL). Deltas then carry
    more text each instead of queueing behind one another: every frame costs the event loop the same
    whatever its size, and a saturated loop delays every reply's frames at once."""
    return min(MAX_INTERVAL, max(COALESCE, len(_streaming) / FRAMES_PER_SECOND))


class DeltaPump:
    """Coalesces text pieces into numbered deltas: the first goes out at once, then at most one per
    `frame_interval()`. The first waits for `after` (the announcement of the message), however that ends.

    `text` and `seq` always describe the same published prefix, which is what a checkpoint saves.
    """

    def __init__(
        self, message_id: int, conversation_id: int, text: str, seq: int, after: asyncio.Future | None = None
    ) -> None:
        self.message_id = message_id
        self.group = frames.conversation_group(conversation_id)
        self._key = deltas_key(message_id)
        self.text = text
        self.seq = seq
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._after = after
        self._expiry_set = False  # set once: a reply streams for minutes, not for DELTAS_TTL
        _streaming.add(message_id)
        self._task = asyncio.create_task(self._loop())

    def feed(self, piece: str) -> None:
        if piece:
            self._pending.append(piece)
            self._wake.set()

    async def _flush(self) -> None:
        if not self._pending:
            return
        piece = "".join(self._pending)
        self._pending.clear()
        self.seq += 1
        self.text += piece
        seq = self.seq
        await group_publish(
            self.group,
            {"type": "chat.delta", "message_id": self.message_id, "seq": seq, "text": piece},
            append=(self._key, f"{seq}\t{piece}"),
            expire=None if self._expiry_set else DELTAS_TTL,
        )
        self._expiry_set = True

    async def _loop(self) -> None:
        if self._after is not None:
            await asyncio.wait([self._after])
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            flushed_at = loop.time()
            await self._flush()
            if self._closed:
                await self._flush()
                return
            self.checkpoint()
            # The interval runs from the flush, not from when its publish returned.
            await asyncio.sleep(max(0.0, flushed_at + frame_interval() - loop.time()))

    def checkpoint(self, **fields: Any) -> None:
        """Have content + seq (and any extra fields) saved with the next batch (chat.checkpoints)."""
        checkpoints().put(self.message_id, self.text, self.seq, fields)

    async def close(self) -> None:
        """Publish what is left and settle its checkpoints; safe to call while being cancelled."""
        self._closed = True
        self._wake.set()
        try:
            await asyncio.shield(self._task)
            await asyncio.shield(checkpoints().settle(self.message_id))
        finally:
            _streaming.discard(self.message_id)

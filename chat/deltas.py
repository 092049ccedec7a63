"""A reply's text on its way to the tabs: numbered deltas, paced, and kept in Redis for late joiners.

Each delta is appended to the Redis list `chat:msg:<id>:deltas` *before* it is published (one script
call, `chat.broadcast`), so a tab that joins the group and then reads the list misses nothing (it drops
seqs it already has). Deltas are coalesced to one frame per COALESCE seconds, spaced further apart when
the process streams more than FRAMES_PER_SECOND allows (`frame_interval`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chat import frames
from chat.broadcast import (
    RELAY_ERRORS,
    RELAY_PATIENCE,
    RELAY_TIMEOUT,
    RETRY_FIRST,
    RETRY_MAX,
    group_publish,
    relay_back,
    relay_lost,
)
from chat.checkpoints import checkpoints
from orweb.redis_clients import async_client

log = logging.getLogger(__name__)

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
        # A delta retried after a publish that failed late may be stored twice: keep its first copy.
        if int(seq) > after_seq and (not found or int(seq) > found[-1][0]):
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

    Numbering and relaying are separate: `text` and `seq` advance as pieces arrive and are what a
    checkpoint and the final row save, whatever Redis does. The deltas Redis hasn't taken yet wait in a
    backlog, in order, and are retried with growing pauses, same seq and text (a tab drops a seq it has),
    so a Redis blip delays the tabs' text but never loses the reply's.
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
        self._backlog: list[tuple[int, str]] = []  # numbered, not yet taken by Redis
        self._wake = asyncio.Event()
        self._sealed = False
        self._after = after
        self._expiry_set = False  # set once: a reply streams for minutes, not for DELTAS_TTL
        _streaming.add(message_id)
        self._task = asyncio.create_task(self._loop())

    def feed(self, piece: str) -> None:
        if piece and not self._sealed:
            self._pending.append(piece)
            self._wake.set()

    def _number(self) -> None:
        if not self._pending:
            return
        piece = "".join(self._pending)
        self._pending.clear()
        self.seq += 1
        self.text += piece
        self._backlog.append((self.seq, piece))

    async def _relay(self) -> bool:
        """Publish the backlog in order; False if Redis failed (what is left stays for the next try)."""
        while self._backlog:
            seq, piece = self._backlog[0]
            try:
                async with asyncio.timeout(RELAY_TIMEOUT):
                    await group_publish(
                        self.group,
                        {"type": "chat.delta", "message_id": self.message_id, "seq": seq, "text": piece},
                        append=(self._key, f"{seq}\t{piece}"),
                        expire=None if self._expiry_set else DELTAS_TTL,
                    )
            except RELAY_ERRORS as exc:
                relay_lost(exc)
                return False
            self._backlog.pop(0)
            self._expiry_set = True
        relay_back()
        return True

    async def _loop(self) -> None:
        if self._after is not None:
            await asyncio.wait([self._after])
        loop = asyncio.get_running_loop()
        retry = RETRY_FIRST
        while True:
            await self._wake.wait()
            self._wake.clear()
            flushed_at = loop.time()
            self._number()
            self.checkpoint()
            if await self._relay():
                if self._sealed:
                    return
                retry = RETRY_FIRST
                # The interval runs from the flush, not from when its publish returned.
                pause = flushed_at + frame_interval() - loop.time()
            else:
                self._wake.set()  # try again after the pause, with whatever arrived meanwhile
                pause, retry = retry, min(retry * 2, RETRY_MAX)
            await asyncio.sleep(max(0.0, pause))

    def checkpoint(self, **fields: Any) -> None:
        """Have content + seq (and any extra fields) saved with the next batch (chat.checkpoints); nothing
        once sealed (the final row is being written)."""
        if not self._sealed:
            checkpoints().put(self.message_id, self.text, self.seq, fields)

    def seal(self) -> None:
        """No more text: number what is pending, so `text` and `seq` are final now; the relay goes on."""
        self._number()
        self._sealed = True
        self._wake.set()

    async def close(self) -> None:
        """Seal, then give the relay up to RELAY_PATIENCE to take the backlog (the tabs' live text; the
        "done" frame and the database have all of it anyway); safe to call while being cancelled."""
        self.seal()
        try:
            await asyncio.shield(asyncio.wait([self._task], timeout=RELAY_PATIENCE))
            if not self._task.done():
                log.error("gave up relaying %s deltas of message %s", len(self._backlog), self.message_id)
                self._task.cancel()
        finally:
            _streaming.discard(self.message_id)

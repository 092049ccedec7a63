"""A reply's reasoning, shown live: pieces are coalesced into "reasoning" frames (at most one every
INTERVAL seconds) for the tabs' Thinking block, and checkpointed with the reply's row so a reload
mid-stream shows what was thought so far. The first frame waits for the message's announcement, as the
first text delta does (chat.deltas), so a tab always knows the message before its thoughts."""

from __future__ import annotations

import asyncio
from typing import Any

from chat.broadcast import try_publish
from chat.deltas import DeltaPump

INTERVAL = 0.1


class ThinkingRelay:
    def __init__(self, message_id: int, conversation_id: int, pump: DeltaPump, after: asyncio.Future | None) -> None:
        self.message_id = message_id
        self.conversation_id = conversation_id
        self.pump = pump
        self.after = after
        self.text = ""
        self.details: list[dict[str, Any]] = []  # [{step, details}], as Message.reasoning_details keeps them
        self._pending: list[str] = []
        self._sent_at = 0.0

    def add_details(self, step: int, details: tuple) -> None:
        if not details:
            return
        if not self.details or self.details[-1]["step"] != step:
            self.details.append({"step": step, "details": []})
        self.details[-1]["details"].extend(details)

    def step_details(self, step: int) -> list[Any]:
        return next((entry["details"] for entry in self.details if entry["step"] == step), [])

    async def feed(self, text: str) -> None:
        if not text:
            return
        self.text += text
        self._pending.append(text)
        if asyncio.get_running_loop().time() - self._sent_at >= INTERVAL:
            await self.flush()

    async def flush(self) -> None:
        """Send what is pending (Redis away: the tabs miss it live, the final row still has it)."""
        if not self._pending:
            return
        if self.after is not None and not self.after.done():
            await asyncio.wait([self.after])
        piece = "".join(self._pending)
        self._pending.clear()
        self._sent_at = asyncio.get_running_loop().time()
        self.pump.checkpoint(reasoning=self.text, reasoning_details=self.details)
        await try_publish(self.conversation_id, {"type": "reasoning", "message_id": self.message_id, "text": piece})

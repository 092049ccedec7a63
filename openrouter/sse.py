"""Decoding an OpenRouter chat stream: SSE framing by httpx-sse, OpenRouter's chunk shapes by `ChunkDecoder`.

Real streams vary (usage on its own `choices: []` chunk, on the finish chunk or before it; error chunks
inside a 200; keep-alive comments anywhere), so the decoder is liberal about shapes and strict about
endings: a stream is only complete with a finish_reason or `[DONE]`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from decimal import Decimal
from typing import Any

import httpx
from httpx_sse import EventSource

from openrouter.errors import (
    IncompleteStream,
    InvalidResponse,
    OpenRouterError,
    UpstreamError,
    error_from_payload,
)
from openrouter.events import (
    Event,
    Finish,
    ReasoningDelta,
    Started,
    StreamError,
    TextDelta,
    ToolCallDelta,
    usage_from_json,
)

logger = logging.getLogger(__name__)

json_decoder = json.JSONDecoder(parse_float=Decimal)
"""Parses money exactly: every JSON float becomes a Decimal."""


async def aiter_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each SSE event of `response`; comments and data-less events never come out."""
    async with aclosing(EventSource(response).aiter_sse()) as events:
        async for sse in events:
            if sse.data:
                yield sse.data


class ChunkDecoder:
    """Turns the data of each SSE event into events; `over` says when to stop reading.

    Usage is held back and emitted once, just before the stream ends, because some providers repeat
    it on several chunks. After a Finish the answer is complete, so a later failure only ends the
    stream (and is logged) instead of turning a complete answer into a StreamError.
    """

    __slots__ = ("generation_id", "model", "provider", "started", "finished", "done", "over", "_usage")

    def __init__(self, model: str, generation_id: str | None = None) -> None:
        self.model = model
        self.generation_id = generation_id
        self.provider: str | None = None
        self.started = False
        self.finished = False
        self.done = False
        self.over = False
        self._usage: dict[str, Any] | None = None

    def feed(self, data: str) -> list[Event]:
        if data == "[DONE]":
            self.done = True
            return self.end()
        try:
            chunk = json_decoder.decode(data)
        except ValueError:
            return self.end(InvalidResponse(f"Malformed stream chunk: {data[:200]!r}"))
        if not isinstance(chunk, dict):
            return self.end(InvalidResponse(f"Unexpected stream chunk: {data[:200]!r}"))
        if error := chunk.get("error"):
            return self.end(error_from_payload(error))
        events: list[Event] = [] if self.started else [self._start(chunk)]
        try:
            self._add_events(chunk, events)
        except (AttributeError, TypeError, IndexError):
            events.extend(self.end(InvalidResponse(f"Unexpected stream chunk: {data[:200]!r}")))
        return events

    def end(self, error: OpenRouterError | None = None) -> list[Event]:
        """The stream is over (EOF, [DONE], or `error`): the held usage and, if it failed, a StreamError."""
        if self.over:
            return []
        self.over = True
        events: list[Event] = []
        if self._usage:
            events.append(usage_from_json(self._usage))
        if error is None and not self.finished and not self.done:
            error = IncompleteStream("The stream ended without a finish_reason or [DONE]")
        if error is not None:
            if self.finished:
                logger.warning("Ignoring a failure after the stream finished: %r", error)
            else:
                events.append(StreamError(error))
        return events

    def _add_events(self, chunk: dict[str, Any], events: list[Event]) -> None:
        if (usage := chunk.get("usage")) and isinstance(usage, dict):
            self._usage = usage
        if choices := chunk.get("choices"):
            choice = choices[0]
            delta = choice.get("delta") or choice.get("message") or {}
            if (text := delta.get("reasoning")) and isinstance(text, str):
                events.append(ReasoningDelta(text))
            if (text := delta.get("content")) and isinstance(text, str):
                events.append(TextDelta(text))
            if calls := delta.get("tool_calls"):
                events.extend(_tool_call_deltas(calls))
            if reason := choice.get("finish_reason"):
                if reason == "error":
                    events.extend(self.end(UpstreamError("The provider ended the stream with an error")))
                    return
                self.finished = True
                events.append(Finish(reason, choice.get("native_finish_reason")))

    def _start(self, chunk: dict[str, Any]) -> Started:
        self.started = True
        self.generation_id = chunk.get("id") or self.generation_id or ""
        self.model = chunk.get("model") or self.model
        self.provider = chunk.get("provider")
        return Started(self.generation_id, self.model, self.provider)


def _tool_call_deltas(calls: Any) -> list[ToolCallDelta]:
    deltas = []
    for position, call in enumerate(calls if isinstance(calls, list) else ()):
        function = call.get("function") or {}
        deltas.append(
            ToolCallDelta(
                index=call.get("index", position),
                id=call.get("id"),
                name=function.get("name"),
                arguments=function.get("arguments") or "",
            )
        )
    return deltas

"""The `/v1` streaming body: the gateway's stream events as `chat.completion.chunk` server-sent events."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.api_responses import error_json, image_parts, usage_json
from gateway.types import CallResult
from openrouter.events import (
    Annotations,
    Event,
    Finish,
    ImageOut,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)

SSE_DONE = b"data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> bytes:
    """One `data:` event with compact JSON."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class ChunkWriter:
    """Turns the gateway's stream events into `chat.completion.chunk` SSE frames, in OpenAI's order:
    the role first, then content / reasoning (with its `reasoning_details`) / tool-call / annotation / image
    deltas, then one finish chunk, then (with
    `stream_options.include_usage`) a usage chunk with `choices: []`, then `[DONE]`.

    Usage is sent once the call is settled, so `usage.cost` is what the ledger charged (reported, or
    estimated from the catalog when OpenRouter sent none). Without `include_usage` the usage rides on the
    finish chunk, where OpenAI's clients ignore it and OpenRouter-aware ones find the cost.
    """

    def __init__(self, requested_model: str, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.id = ""
        self.model = requested_model
        self.provider: str | None = None
        self.created = int(time.time())
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.started = False
        self._frames: dict[str, tuple[bytes, bytes]] = {}

    def _chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        if self.provider:
            chunk["provider"] = self.provider
        chunk["choices"] = (
            [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        )
        return chunk

    def _delta(self, delta: dict[str, Any]) -> bytes:
        if self.started:
            return sse(self._chunk(delta))
        self.started = True
        return sse(self._chunk({"role": "assistant", "content": ""})) + sse(self._chunk(delta))

    def _text(self, key: str, text: str) -> bytes:
        """`_delta({key: text})`, from the bytes around the text, built once per stream: one per token."""
        if not self.started:
            return self._delta({key: text})
        frame = self._frames.get(key)
        if frame is None:
            head, hole, tail = sse(self._chunk({key: None})).partition(f'"delta":{{"{key}":null}}'.encode())
            frame = self._frames[key] = (head + hole[:-5], hole[-1:] + tail)
        return frame[0] + json.dumps(text).encode() + frame[1]

    def event(self, event: Event) -> bytes:
        """The SSE bytes for one event (empty for events that only update state)."""
        if isinstance(event, Started):
            self.id, self.model, self.provider = event.generation_id, event.model, event.provider
            self._frames.clear()
            if self.started:
                return b""
            self.started = True
            return sse(self._chunk({"role": "assistant", "content": ""}))
        if isinstance(event, TextDelta):
            return self._text("content", event.text)
        if isinstance(event, ReasoningDelta):
            if event.details:
                return self._delta({"reasoning": event.text, "reasoning_details": list(event.details)})
            return self._text("reasoning", event.text)
        if isinstance(event, Annotations):
            return self._delta({"annotations": list(event.items)})
        if isinstance(event, ImageOut):
            return self._delta({"images": image_parts([event.url])})
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index, "function": {"arguments": event.arguments}}
            if event.id:
                call["id"], call["type"] = event.id, "function"
            if event.name:
                call["function"]["name"] = event.name
            return self._delta({"tool_calls": [call]})
        if isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        return b""

    def error(self, error: Exception) -> bytes:
        """OpenRouter's mid-stream error chunk: HTTP is already 200, so the error travels in the data."""
        status = getattr(error, "status", None) or 502
        chunk = self._chunk({"content": ""}, "error")
        message = getattr(error, "message", None) or str(error)
        chunk["error"] = error_json(message, status, code="upstream_error")["error"]
        return sse(chunk)

    def end(self, result: CallResult) -> bytes:
        """Finish chunk, usage (with the settled cost) and `[DONE]`."""
        usage = usage_json(result, self.usage)
        finish = self._chunk({}, self.finish_reason or result.finish_reason or "stop")
        if not self.include_usage:
            finish["usage"] = usage
            return sse(finish) + SSE_DONE
        tail = self._chunk(None)
        tail["usage"] = usage
        return sse(finish) + sse(tail) + SSE_DONE

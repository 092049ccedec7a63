"""Decoding a streamed Responses API call (`POST /responses`, beta) into the same events as a chat stream,
so the metered path meters both alike.

Events are JSON objects with a `type`: `response.created` starts it (the response id is the generation
id), `response.output_text.delta` and `response.reasoning.delta` carry text, `response.output_item.done`
a finished item (a function call, whole; a message's `url_citation` annotations), `response.completed` the usage
and the end, `response.failed` (or an `error` event) a failure. Unknown types are ignored.
"""

from __future__ import annotations

from typing import Any

from openrouter.errors import InvalidResponse, UpstreamError, error_from_payload
from openrouter.events import (
    Annotations,
    Event,
    Finish,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
    usage_from_json,
)
from openrouter.sse import ChunkDecoder, parse_chunk


def responses_usage(usage: dict[str, Any]) -> Usage:
    """A Responses `usage` (input/output tokens) as the chat `Usage`."""
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return usage_from_json(
        {
            **usage,
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "prompt_tokens_details": {
                "cached_tokens": input_details.get("cached_tokens"),
                "cache_write_tokens": input_details.get("cache_write_tokens"),
            },
            "completion_tokens_details": {"reasoning_tokens": output_details.get("reasoning_tokens")},
        }
    )


class ResponsesDecoder(ChunkDecoder):
    """`ChunkDecoder` for Responses events: the same `feed` / `end` contract and the same events."""

    __slots__ = ()

    def feed(self, data: bytes | str) -> list[Event]:
        if data in (b"[DONE]", "[DONE]"):
            self.done = True
            return self.end()
        try:
            event = parse_chunk(data)
        except ValueError:
            return self.end(InvalidResponse(f"Malformed stream event: {str(data)[:200]!r}"))
        if type(event) is not dict:
            return self.end(InvalidResponse(f"Unexpected stream event: {str(data)[:200]!r}"))
        kind = event.get("type")
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        if kind == "response.failed" or kind == "error":
            error = response.get("error") or event.get("error") or event
            return self.end(error_from_payload(error) if isinstance(error, dict) else UpstreamError(str(error)))
        events: list[Event] = []
        if not self.started:
            self.started = True
            self.generation_id = response.get("id") or self.generation_id or ""
            self.model = response.get("model") or self.model
            self.provider = response.get("provider")
            events.append(Started(self.generation_id, self.model, self.provider))
        delta = event.get("delta")
        if kind == "response.output_text.delta" and isinstance(delta, str) and delta:
            events.append(TextDelta(delta))
        elif kind == "response.reasoning.delta" and isinstance(delta, str) and delta:
            events.append(ReasoningDelta(delta))
        elif kind == "response.output_item.done":
            item = event.get("item") if isinstance(event.get("item"), dict) else {}
            if item.get("type") == "function_call":
                index = event.get("output_index", 0)
                arguments = item.get("arguments") if isinstance(item.get("arguments"), str) else ""
                events.append(ToolCallDelta(index, item.get("call_id"), item.get("name"), arguments))
            parts = [part for part in item.get("content") or () if isinstance(part, dict)]
            found = [a for part in parts for a in part.get("annotations") or () if isinstance(a, dict)]
            if found:
                events.append(Annotations(tuple(found)))
        elif kind == "response.completed":
            if isinstance(response.get("usage"), dict):
                self._usage = None
                events.append(responses_usage(response["usage"]))
            self.finished = True
            incomplete = response.get("status") == "incomplete"
            events.append(Finish("length" if incomplete else "stop", response.get("status")))
            events.extend(self.end())
        return events

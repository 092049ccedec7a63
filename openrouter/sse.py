"""Decoding an OpenRouter chat stream: SSE framing by `EventSplitter`, OpenRouter's chunk shapes by `ChunkDecoder`.

Real streams vary (usage on its own `choices: []` chunk, on the finish chunk or before it; error chunks
inside a 200; keep-alive comments anywhere), so the decoder is liberal about shapes and strict about
endings: a stream is only complete with a finish_reason or `[DONE]`.

Both run once per chunk for every stream of the process, so they work on bytes and do little: the
splitter cuts events with `bytes.split`, chunks are parsed by orjson, and only a chunk that carries
usage is parsed again with the standard library, so its cost comes out as an exact Decimal.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import orjson

from openrouter.errors import (
    IncompleteStream,
    InvalidResponse,
    OpenRouterError,
    UpstreamError,
    error_from_payload,
)
from openrouter.events import (
    Annotations,
    Event,
    Finish,
    ImageOut,
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

_DONE = b"[DONE]"


class EventSplitter:
    """Cuts an SSE byte stream, fed in pieces split anywhere, into the `data` of its events.

    Lines may end in LF, CRLF or CR. Comments, `event`/`id`/`retry` and unknown fields are dropped, and so
    are events without data; an event the stream ends in the middle of never comes out.
    """

    __slots__ = ("_buffer", "_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._cr = False

    def feed(self, piece: bytes) -> list[bytes]:
        """The data of every event that `piece` completes, in order."""
        if self._cr or b"\r" in piece:
            piece = self._normalise(piece)
        *blocks, self._buffer = (self._buffer + piece).split(b"\n\n") if self._buffer else piece.split(b"\n\n")
        if not blocks:
            return []
        datas = []
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block:
                if len(block) > 6:
                    datas.append(block[6:])
            elif data := _data_of(block):
                datas.append(data)
        return datas

    def _normalise(self, piece: bytes) -> bytes:
        """Line ends as LF. A piece that ends in CR has ended its line; an LF starting the next is its CRLF's."""
        if self._cr and piece.startswith(b"\n"):
            piece = piece[1:]
        self._cr = piece.endswith(b"\r")
        return piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _data_of(block: bytes) -> bytes:
    """The data of an event written over several lines (or with comments or other fields)."""
    lines = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[6:] if line.startswith(b"data: ") else line[5:])
        elif line == b"data":
            lines.append(b"")
    return b"\n".join(lines)


def parse_chunk(data: bytes | str) -> Any:
    """One chunk's JSON; a chunk with usage is parsed with Decimal floats, so its cost is exact.

    orjson parses the rest (a few times faster); what it refuses but the standard library accepts
    (NaN, lone surrogates) is parsed by the standard library too.
    Raises ValueError for what isn't JSON at all.
    """
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        if type(chunk) is not dict or not chunk.get("usage"):
            return chunk
    return json_decoder.decode(data.decode() if isinstance(data, bytes) else data)


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

    def feed(self, data: bytes | str) -> list[Event]:
        """The events of one SSE event's data (bytes from the splitter; str is accepted too)."""
        if data == _DONE or data == "[DONE]":
            self.done = True
            return self.end()
        try:
            chunk = parse_chunk(data)
        except ValueError:
            return self.end(InvalidResponse(f"Malformed stream chunk: {_excerpt(data)!r}"))
        if type(chunk) is not dict:
            return self.end(InvalidResponse(f"Unexpected stream chunk: {_excerpt(data)!r}"))
        if error := chunk.get("error"):
            return self.end(error_from_payload(error))
        events: list[Event] = [] if self.started else [self._start(chunk)]
        try:
            self._add_events(chunk, events)
        except (AttributeError, TypeError, IndexError):
            events.extend(self.end(InvalidResponse(f"Unexpected stream chunk: {_excerpt(data)!r}")))
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
            events.extend(message_events(delta))
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


def message_events(delta: dict[str, Any]) -> list[Event]:
    """Reasoning (text and `reasoning_details`), content, annotations and images of one delta or message,
    in that order; tool calls are left to the caller."""
    events: list[Event] = []
    text = delta.get("reasoning")
    details = delta.get("reasoning_details")
    details = tuple(d for d in details if isinstance(d, dict)) if isinstance(details, list) else ()
    if (text and isinstance(text, str)) or details:
        events.append(ReasoningDelta(text if isinstance(text, str) else "", details))
    if (text := delta.get("content")) and isinstance(text, str):
        events.append(TextDelta(text))
    annotations = delta.get("annotations")
    if isinstance(annotations, list) and (items := tuple(a for a in annotations if isinstance(a, dict))):
        events.append(Annotations(items))
    for url in image_urls(delta.get("images")):
        events.append(ImageOut(url))
    return events


def image_urls(images: Any) -> list[str]:
    """The URLs of `images` items (`{"type": "image_url", "image_url": {"url": ...}}`), in order."""
    urls = []
    for image in images if isinstance(images, list) else ():
        inner = image.get("image_url") if isinstance(image, dict) else None
        url = inner.get("url") if isinstance(inner, dict) else inner
        if isinstance(url, str) and url:
            urls.append(url)
    return urls


def _excerpt(data: bytes | str) -> str:
    return (data.decode(errors="replace") if isinstance(data, bytes) else data)[:200]


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

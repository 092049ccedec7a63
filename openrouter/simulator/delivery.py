"""Delivering a planned reply: one JSON body, or a paced SSE stream with keep-alives and faults.

Every generation is recorded once when it ends (finished, failed mid-stream, dropped or cancelled),
billing the tokens produced so far, as OpenRouter does, except that one ending in an error, or with no
completion token and no finish reason, is not charged (search and OCR fees still are; ``Charges.billed``).
A stream the client closes stops there and is billed for what was sent, marked ``cancelled``, except on
providers that can't be stopped (Bedrock, Google, Groq, Mistral), where it is billed in full. A
non-streamed generation cannot be cancelled: it runs to its end whether or not its client waits, and is
billed in full, not marked cancelled (OpenRouter's cancellation is a streaming feature).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from openrouter.simulator.charges import Charges
from openrouter.simulator.chat import ChatRequest
from openrouter.simulator.faults import FaultSpec, error_type
from openrouter.simulator.replies import Reply
from openrouter.simulator.state import Generation, SimModel, SimState
from openrouter.simulator.textgen import seed_of

KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
# Providers whose generation goes on (and is billed in full) when the client closes the stream.
FULL_ON_CANCEL = frozenset({"Amazon Bedrock", "Google", "Google AI Studio", "Google Vertex", "Groq", "Mistral"})
_NATIVE_FINISH = {
    "anthropic": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"},
    "google": {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"},
}


class DropConnection(httpx.RemoteProtocolError):
    """Raised mid-stream to cut the connection: a server closes it without ending the response, and
    in-process (``httpx.ASGITransport``) clients get the same error a real dropped connection gives."""

    def __init__(self) -> None:
        super().__init__("peer closed connection without sending complete message body (incomplete chunked read)")


def native_finish(model: SimModel, finish_reason: str | None) -> str | None:
    """The provider's own word for the finish reason (Anthropic and Google differ from OpenAI)."""
    vendor = model.id.split("/", 1)[0]
    return _NATIVE_FINISH.get(vendor, {}).get(finish_reason or "", finish_reason)


def new_generation_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return f"gen-{int(time.time())}-{''.join(secrets.choice(alphabet) for _ in range(20))}"


@dataclass
class Completion:
    """One generation in flight: the planned reply, its delivery, and its bookkeeping."""

    state: SimState
    request: ChatRequest
    model: SimModel
    spec: FaultSpec
    reply: Reply
    charges: Charges
    id: str = field(default_factory=new_generation_id)
    created: int = field(default_factory=lambda: int(time.time()))
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    emitted: int = 0
    emitted_reasoning: int = 0
    images_sent: int = 0
    finished: bool = False
    response_key: str | None = None
    cache_hit: bool = False

    def __post_init__(self) -> None:
        self.state.begin(self.id, streamed=self.request.stream)

    @property
    def ttft(self) -> float:
        return self.state.config.ttft if self.spec.ttft is None else self.spec.ttft

    @property
    def tps(self) -> float:
        return self.state.config.tps if self.spec.tps is None else self.spec.tps

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Generation-Id": self.id}

    @property
    def provider(self) -> str:
        return self.charges.endpoint.provider

    def usage(self, completion_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
        if self.cache_hit:  # answered from the response cache: every billable counter is 0
            return Charges(self.charges.endpoint, 0).usage(0, 0, 0, with_cost=True)
        return self.charges.usage(
            completion_tokens, reasoning_tokens, self.images_sent, with_cost=not self.spec.no_cost
        )

    @property
    def annotations(self) -> list[dict[str, Any]]:
        """Citations of the search, then the parsed files (sending those back skips parsing them again)."""
        return self.charges.search.citations + self.charges.files.annotations

    def finish(self, finish_reason: str | None, *, cancelled: bool = False) -> None:
        """Record the generation once, billing the tokens produced so far (or only its fees, see ``Charges.billed``)."""
        if self.finished:
            return
        self.finished = True
        now = time.monotonic()
        first = self.first_token_at or now
        charges = self.charges
        hit = self.cache_hit
        succeeded = finish_reason not in (None, "error") and self.spec.malformed_after is None
        if self.response_key is not None and succeeded and not hit:
            self.state.response_cache.add(self.response_key)
        self.state.record(
            Generation(
                id=self.id,
                model=self.model.id,
                provider=self.provider,
                streamed=self.request.stream,
                created=time.time(),
                latency=first - self.started,
                generation_time=now - first,
                tokens_prompt=charges.prompt_tokens,
                tokens_completion=0 if hit else self.emitted,
                tokens_reasoning=0 if hit else self.emitted_reasoning,
                cost=Decimal(0) if hit else charges.billed(self.emitted, self.images_sent, finish_reason),
                finish_reason=finish_reason,
                native_finish_reason=native_finish(self.model, finish_reason),
                cancelled=cancelled,
                ready_at=now + self.state.config.generation_delay,
                tokens_cached=charges.cache.cached_tokens,
                cache_discount=charges.cache_discount(),
                search_results=None if hit else charges.search.results or None,
                media_completion=self.images_sent or None,
            )
        )

    def _base(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model.id,
            "object": kind,
            "created": self.created,
        }

    # Non-streaming ------------------------------------------------------------------------------

    def _to_the_end(self) -> tuple[int, str | None]:
        """How far the whole reply gets (its tokens, or where ``error_after``/``drop_after`` stops it) and
        which failure stops it, if any."""
        spec, total = self.spec, self.reply.completion_tokens
        points = [(spec.error_after, "error"), (spec.drop_after, "drop")]
        failures = [(at, kind) for at, kind in points if at is not None and at <= total]
        return min(failures, key=lambda f: f[0], default=(total, None))

    def _produce(self, tokens: int, failure: str | None) -> None:
        self.emitted = tokens
        self.emitted_reasoning = min(tokens, len(self.reply.reasoning))
        if failure is None:
            self.images_sent = len(self.reply.images)

    async def generate(self) -> bytes | None:
        """Generate the whole reply in the time a stream would take, bill it, and give the body to send:
        the completion, or OpenRouter's error body when the provider failed after ``error_after`` tokens
        (``None`` after ``drop_after``: the connection is to be dropped). Run apart from the request."""
        reply, spec = self.reply, self.spec
        tokens, failure = self._to_the_end()
        await asyncio.sleep(self._time_to(tokens))
        self.first_token_at = self.started + self.ttft
        self._produce(tokens, failure)
        if failure == "error":
            self.finish("error")
            return json.dumps({"error": self._error()}).encode()
        if failure == "drop":
            self.finish(None)
            return None
        self.finish(reply.finish_reason)
        encoded = json.dumps(self._completion()).encode()
        return encoded[: len(encoded) // 2] if spec.malformed_after is not None else encoded

    def _time_to(self, tokens: int) -> float:
        """When a stream of this reply would have sent ``tokens`` tokens (stalls included)."""
        stall = self.spec.stall if self.spec.stall and (self.spec.stall_after or 0) <= tokens else 0
        return self.ttft + stall + (tokens / self.tps if self.tps else 0)

    def _completion(self) -> dict[str, Any]:
        reply = self.reply
        shown = reply.reasoning_shown and bool(reply.reasoning)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(reply.content),
            "refusal": None,
            "reasoning": "".join(reply.reasoning) if shown else None,
        }
        if shown:
            message["reasoning_details"] = reply.reasoning_details()
        if self.annotations:
            message["annotations"] = self.annotations
        if reply.images:
            message["images"] = [{"type": "image_url", "image_url": {"url": url}} for url in reply.images]
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": "".join(c.arguments)},
                }
                for c in reply.tool_calls
            ]
        data = {
            **self._base("chat.completion"),
            "choices": [
                {
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                    "native_finish_reason": native_finish(self.model, reply.finish_reason),
                    "index": 0,
                    "message": message,
                }
            ],
            "system_fingerprint": f"fp_{seed_of(self.model.id) % 16**10:010x}",
        }
        if not self.spec.no_usage:
            data["usage"] = self.usage(reply.completion_tokens, len(reply.reasoning))
        return data

    # Streaming ----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[bytes]:
        """SSE bytes, paced by an absolute schedule so high token rates stay accurate."""
        spec = self.spec
        loop = asyncio.get_running_loop()
        yield KEEPALIVE
        first_at = loop.time() + self.ttft
        async for keepalive in self._wait_until(first_at):
            yield keepalive
        pending = {
            name: at
            for name, at in (
                ("stall", (spec.stall_after or 0) if spec.stall else None),
                ("malformed", spec.malformed_after),
                ("error", spec.error_after),
                ("drop", spec.drop_after),
            )
            if at is not None
        }
        units = self._units()
        position = 0
        while True:
            for name in [n for n, at in pending.items() if at <= self.emitted]:
                del pending[name]
                if name == "stall":
                    assert spec.stall is not None
                    async for keepalive in self._wait_until(loop.time() + spec.stall):
                        yield keepalive
                    first_at += spec.stall
                elif name == "malformed":
                    yield b'data: {"id":"' + self.id.encode() + b'","choices":[{"delta":{"content":\n\n'
                elif name == "error":
                    self.finish("error")
                    yield self._error_chunk()
                    return
                else:
                    self.finish(None)
                    raise DropConnection
            if position >= len(units):
                break
            limit = min([self.state.config.tokens_per_chunk] + [at - self.emitted for at in pending.values()])
            chunk, position, tokens, reasoning = self._next_chunk(units, position, limit)
            if self.tps:
                async for keepalive in self._wait_until(first_at + self.emitted / self.tps):
                    yield keepalive
            self.first_token_at = self.first_token_at or time.monotonic()
            self.emitted += tokens
            self.emitted_reasoning += reasoning
            if chunk:
                yield chunk
        usage = [] if spec.no_usage else [self._usage_chunk()]
        finish = [self._finish_chunk()]
        self.finish(self.reply.finish_reason)
        for chunk in usage + finish if spec.usage_before_finish else finish + usage:
            yield chunk
        yield DONE

    def cancel(self) -> None:
        """The client went away, marked ``cancelled``. Most providers stop there and what was produced is
        billed; those that can't be stopped (``FULL_ON_CANCEL``) generate the whole reply, billed in full."""
        if self.provider not in FULL_ON_CANCEL or self.finished:
            self.finish(None, cancelled=True)
            return
        tokens, failure = self._to_the_end()
        self._produce(tokens, failure)
        ending = {"error": "error", "drop": None}.get(failure or "", self.reply.finish_reason)
        self.finish(ending, cancelled=True)

    async def _wait_until(self, deadline: float) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        interval = self.state.config.keepalive_interval
        while (remaining := deadline - loop.time()) > 0:
            if remaining <= interval:
                await asyncio.sleep(remaining)
                return
            await asyncio.sleep(interval)
            yield KEEPALIVE

    def _units(self) -> list[tuple[str, int, str]]:
        """The reply as (kind, index, piece). Tokens: "reasoning" (sent), "hidden" (reasoning with
        ``exclude``: generated and billed, not sent), "content", "arguments". Not tokens: "sealed" (the
        reasoning's closing details: signature or encrypted data), "call" (opens a tool call), "image",
        "annotations"."""
        reply = self.reply
        shown = reply.reasoning_shown
        units = [("reasoning" if shown else "hidden", 0, p) for p in reply.reasoning]
        if shown and reply.reasoning and reply.reasoning_format.startswith(("anthropic", "openai")):
            units.append(("sealed", 0, ""))
        units += [("content", 0, p) for p in reply.content]
        for index, call in enumerate(reply.tool_calls):
            units.append(("call", index, ""))
            units += [("arguments", index, p) for p in call.arguments]
        units += [("image", index, "") for index in range(len(reply.images))]
        if self.annotations:
            units.append(("annotations", 0, ""))
        return units

    def _next_chunk(self, units: list[tuple[str, int, str]], position: int, limit: int) -> tuple[bytes, int, int, int]:
        """Up to ``limit`` tokens of one kind as a chunk, with the next position and the tokens counted."""
        kind, index, _ = units[position]
        if kind == "sealed":
            sealed = [d for d in self.reply.reasoning_details() if d["type"] == "reasoning.encrypted"]
            if not sealed:
                sealed = [{**self.reply.reasoning_details()[0], "text": ""}]
            return self._delta_chunk({"content": "", "reasoning": "", "reasoning_details": sealed}), position + 1, 0, 0
        if kind == "image":
            self.images_sent += 1
            image = {"type": "image_url", "image_url": {"url": self.reply.images[index]}}
            return self._delta_chunk({"content": "", "images": [image]}), position + 1, 0, 0
        if kind == "annotations":
            return self._delta_chunk({"content": "", "annotations": self.annotations}), position + 1, 0, 0
        if kind == "call":
            call = self.reply.tool_calls[index]
            opening = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            return self._delta_chunk({"tool_calls": [opening]}), position + 1, 0, 0
        end = position
        while end < len(units) and end - position < limit and units[end][:2] == (kind, index):
            end += 1
        text = "".join(u[2] for u in units[position:end])
        count = end - position
        if kind == "hidden":
            return b"", end, count, count
        if kind == "reasoning":
            details = self.reply.reasoning_details(text)
            return (
                self._delta_chunk({"content": "", "reasoning": text, "reasoning_details": details}),
                end,
                count,
                count,
            )
        if kind == "content":
            return self._delta_chunk({"content": text}), end, count, 0
        return (
            self._delta_chunk({"tool_calls": [{"index": index, "function": {"arguments": text}}]}),
            end,
            count,
            0,
        )

    def _delta_chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {
            "index": 0,
            "delta": {"role": "assistant", **delta},
            "finish_reason": finish_reason,
            "native_finish_reason": native_finish(self.model, finish_reason),
            "logprobs": None,
        }
        return _sse({**self._base("chat.completion.chunk"), "choices": [choice]})

    def _finish_chunk(self) -> bytes:
        return self._delta_chunk({"content": ""}, self.reply.finish_reason)

    def _usage_chunk(self) -> bytes:
        usage = self.usage(self.emitted, self.emitted_reasoning)
        return _sse({**self._base("chat.completion.chunk"), "choices": [], "usage": usage})

    def _error(self) -> dict[str, Any]:
        """The provider's failure after the response started, as OpenRouter reports it in a 200 body."""
        code = self.spec.error_code or 502
        return {"code": code, "message": "Provider returned error", "metadata": {"error_type": error_type(code)}}

    def _error_chunk(self) -> bytes:
        choice = {
            "index": 0,
            "delta": {"content": ""},
            "finish_reason": "error",
            "native_finish_reason": "error",
            "logprobs": None,
        }
        return _sse({**self._base("chat.completion.chunk"), "error": self._error(), "choices": [choice]})


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"

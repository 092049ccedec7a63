"""``POST /chat/completions``: validate, pick the model (with fallbacks), plan the reply, deliver it.

The reply is planned in full first (a deterministic function of the request), then delivered either
as one JSON body or as a paced SSE stream; faults only change the delivery.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openrouter.simulator.errors import SimError
from openrouter.simulator.faults import (
    FaultSpec,
    FaultSpecError,
    context_length_message,
    credits_message,
    error_type,
    fault_error,
)
from openrouter.simulator.state import Generation, SimModel, SimState
from openrouter.simulator.textgen import (
    content_text,
    count_prompt_tokens,
    default_length,
    echo_text,
    generated_pieces,
    reasoning_pieces,
    seed_of,
    strip_directives,
    tokenize,
)

KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
ROUTING_SUFFIXES = (":nitro", ":floor", ":online")
ROUTER_TARGETS = ("openai/gpt-4o-mini", "anthropic/claude-3.5-haiku", "google/gemini-2.5-flash")
TOOLS_UNSUPPORTED = (
    "No endpoints found that support tool use. To learn more about provider routing, visit: "
    "https://openrouter.ai/docs/provider-routing"
)
IMAGES_UNSUPPORTED = "No endpoints found that support image input"
_NATIVE_FINISH = {
    "anthropic": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"},
    "google": {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"},
}
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_DATA_URL = re.compile(r"data:image/(png|jpeg|jpg|webp|gif);base64,(.+)", re.DOTALL)
_CALL = re.compile(r"call:([A-Za-z0-9_.\-]+)\(")


class DropConnection(Exception):
    """Raised by a stream to have the connection closed without finishing the response."""


@dataclass
class ChatRequest:
    """A validated request: messages have their ``[[sim ...]]`` directives removed."""

    body: dict[str, Any]
    messages: list[dict[str, Any]]
    candidates: list[str]
    stream: bool
    max_tokens: int | None
    spec: FaultSpec
    prompt_tokens: int
    has_images: bool

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.body.get("tools") or []

    @property
    def prompt_text(self) -> str:
        return "\n".join(content_text(m.get("content")) for m in self.messages)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: list[str]


@dataclass
class Reply:
    """What the model "says": reasoning, then content or tool calls, and why it stopped."""

    reasoning: list[str]
    content: list[str]
    tool_calls: list[ToolCall]
    finish_reason: str

    @property
    def completion_tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + sum(len(c.arguments) for c in self.tool_calls)


def parse_request(body: Any, header_spec: str | None) -> ChatRequest:
    """Validate the body the way OpenRouter does, naming the problem in a 400."""
    if not isinstance(body, dict):
        raise SimError(400, "Invalid JSON body: expected an object")
    messages = body.get("messages")
    if messages is None and isinstance(body.get("prompt"), str):
        messages = [{"role": "user", "content": body["prompt"]}]
    if not isinstance(messages, list) or not messages:
        raise SimError(400, 'Input required: specify "prompt" or "messages"')
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise SimError(400, f"messages[{i}].role: expected one of {', '.join(sorted(_ROLES))}")
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise SimError(400, "max_tokens: expected a positive integer")
    if not isinstance(body.get("stream", False), bool):
        raise SimError(400, "stream: expected a boolean")
    _check_tools(body.get("tools"))
    candidates = _candidates(body)
    messages, directive_specs = _strip_sim_directives(messages)
    try:
        spec = FaultSpec()
        for raw in [*directive_specs, header_spec or ""]:
            spec = FaultSpec.parse(raw).over(spec)
    except FaultSpecError as exc:
        raise SimError(400, str(exc)) from exc
    return ChatRequest(
        body=body,
        messages=messages,
        candidates=candidates,
        stream=body.get("stream", False),
        max_tokens=max_tokens,
        spec=spec,
        prompt_tokens=count_prompt_tokens(messages),
        has_images=_check_images(messages),
    )


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SimError(400, f"{name}: expected a number between {low} and {high}, got {value!r}")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise SimError(400, "tools: expected an array")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise SimError(400, f"tools[{i}].function.name: required")


def _candidates(body: dict[str, Any]) -> list[str]:
    models = body.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise SimError(400, "models: expected an array of model IDs")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise SimError(400, "model: expected a string")
    candidates = ([model] if model else []) + [m for m in models if m != model]
    if not candidates:
        raise SimError(400, "No models provided")
    return candidates


def _strip_sim_directives(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Remove ``[[sim ...]]`` from the last user message, returning a copy and the specs."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        return messages, []
    message = dict(messages[last_user])
    content = message.get("content")
    specs: list[str] = []
    if isinstance(content, str):
        message["content"], specs = strip_directives(content)
    elif isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                text, found = strip_directives(part["text"])
                specs += found
                part = {**part, "text": text}
            parts.append(part)
        message["content"] = parts
    return [*messages[:last_user], message, *messages[last_user + 1 :]], specs


def _check_images(messages: list[dict[str, Any]]) -> bool:
    """True if any message carries an image; a malformed one is a 400 ``invalid_image``."""
    found = False
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            found = True
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not _valid_image_url(url):
                raise SimError(
                    400,
                    "Invalid image: expected an http(s) URL or a base64 data URL of a png, jpeg, webp or gif",
                    {"error_type": "invalid_image"},
                )
    return found


def _valid_image_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    if url.startswith(("http://", "https://")):
        return True
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return False
    try:
        return bool(base64.b64decode(match.group(2), validate=True))
    except (binascii.Error, ValueError):
        return False


def choose_model(state: SimState, request: ChatRequest) -> tuple[SimModel, FaultSpec]:
    """The first candidate that can serve the request, and the faults that apply to it.

    Request faults with a ``status`` fail the whole request; a candidate's own failure (invalid id,
    per-model fault, missing capability, context, credit) moves on to the next, like OpenRouter's
    ``models`` fallbacks. When all fail, the last error is the answer.
    """
    first = state.models.get(request.candidates[0])
    status = _fault_status(state, request.spec)
    if status is not None:
        raise _fault(request, request.spec, status, first, request.candidates[0])
    error: SimError | None = None
    for model_id in request.candidates:
        state.requests[model_id] += 1
        try:
            return _check_candidate(state, request, model_id)
        except SimError as exc:
            error = exc
    assert error is not None
    raise error


def _check_candidate(state: SimState, request: ChatRequest, model_id: str) -> tuple[SimModel, FaultSpec]:
    model = _resolve(state, model_id)
    if model.is_router:
        model = _route(state, request)
    model_spec = state.faults.get(model.id, FaultSpec())
    status = _fault_status(state, model_spec)
    if status is not None:
        raise _fault(request, model_spec, status, model, model.id)
    if request.tools and "tools" not in model.supported_parameters:
        raise SimError(404, TOOLS_UNSUPPORTED)
    if request.has_images and not model.accepts_images:
        raise SimError(404, IMAGES_UNSUPPORTED)
    if request.prompt_tokens + (request.max_tokens or 0) > model.context_length:
        raise SimError(
            400,
            context_length_message(model.context_length, request.prompt_tokens, request.max_tokens or 0),
            {"error_type": "context_length_exceeded"},
        )
    _check_credit(state, request, model)
    return model, request.spec.over(model_spec)


def _resolve(state: SimState, model_id: str) -> SimModel:
    model = state.models.get(model_id)
    if model is None and model_id.endswith(ROUTING_SUFFIXES):
        model = state.models.get(model_id.rsplit(":", 1)[0])
    if model is None:
        raise SimError(400, f"{model_id} is not a valid model ID")
    return model


def _route(state: SimState, request: ChatRequest) -> SimModel:
    """A router model serves with a real one that can handle the request."""
    preferred = [state.models[m] for m in ROUTER_TARGETS if m in state.models]
    for model in preferred + list(state.models.values()):
        if model.is_router:
            continue
        if request.tools and "tools" not in model.supported_parameters:
            continue
        if request.has_images and not model.accepts_images:
            continue
        return model
    raise SimError(404, "No endpoints found for openrouter/auto.")


def _fault_status(state: SimState, spec: FaultSpec) -> int | None:
    if spec.fail_first is not None and spec.key is not None:
        state.fail_counts[spec.key] += 1
        return (spec.status or 503) if state.fail_counts[spec.key] <= spec.fail_first else None
    return spec.status


def _fault(
    request: ChatRequest, spec: FaultSpec, status: int, model: SimModel | None, model_id: str
) -> SimError:
    return fault_error(
        status,
        model=model_id,
        provider=model.provider if model else "Unknown",
        prompt=request.prompt_text,
        prompt_tokens=request.prompt_tokens,
        max_tokens=requested_tokens(request, model) if model else request.max_tokens or 0,
        context_length=model.context_length if model else 0,
        retry_after=spec.retry_after,
    )


def requested_tokens(request: ChatRequest, model: SimModel) -> int:
    """What the credit check assumes: ``max_tokens``, else the model's maximum output."""
    if request.max_tokens is not None:
        return request.max_tokens
    return model.max_completion_tokens or max(model.context_length - request.prompt_tokens, 0)


def _check_credit(state: SimState, request: ChatRequest, model: SimModel) -> None:
    remaining = state.remaining_credit()
    if remaining is None:
        return
    wanted = requested_tokens(request, model)
    prompt_cost = request.prompt_tokens * model.price("prompt") + model.price("request")
    per_token = model.price("completion")
    if prompt_cost + wanted * per_token <= remaining:
        return
    affordable = int(max(remaining - prompt_cost, Decimal(0)) / per_token) if per_token else 0
    raise SimError(402, credits_message(wanted, affordable), {"error_type": "payment_required"})


def cost_of(model: SimModel, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """What a generation costs at the model's own prices (reasoning is billed as completion)."""
    return (
        prompt_tokens * model.price("prompt")
        + completion_tokens * model.price("completion")
        + model.price("request")
    )


def plan_reply(state: SimState, request: ChatRequest, model: SimModel, spec: FaultSpec) -> Reply:
    """The deterministic reply for this request on this model, cut at ``max_tokens``."""
    seed = seed_of(model.id, request.messages)
    last = request.messages[-1]
    reasoning = reasoning_pieces(seed) if _reasons(model, request.body) else []
    content: list[str] = []
    calls = _tool_calls(request, seed) if last["role"] == "user" else []
    if not calls:
        content = _content(state, request, spec, seed, last)
    reply = Reply(reasoning, content, calls, "tool_calls" if calls else "stop")
    if request.max_tokens is not None and reply.completion_tokens > request.max_tokens:
        _cut(reply, request.max_tokens)
    return reply


def _content(
    state: SimState, request: ChatRequest, spec: FaultSpec, seed: int, last: dict[str, Any]
) -> list[str]:
    text = content_text(last.get("content"))
    if last["role"] == "tool":
        return tokenize(f"The result is {text}.")
    echoed = echo_text(text) if last["role"] == "user" else None
    if echoed is not None:
        return tokenize(echoed)
    return generated_pieces(seed, spec.tokens or state.config.reply_tokens or default_length(seed))


def _reasons(model: SimModel, body: dict[str, Any]) -> bool:
    options = body.get("reasoning")
    options = options if isinstance(options, dict) else {}
    if options.get("exclude") or options.get("enabled") is False or body.get("include_reasoning") is False:
        return False
    asked = bool(body.get("reasoning")) or body.get("include_reasoning") is True
    return model.always_reasons or (asked and "reasoning" in model.supported_parameters)


def _cut(reply: Reply, budget: int) -> None:
    reply.reasoning = reply.reasoning[:budget]
    budget -= len(reply.reasoning)
    reply.content = reply.content[:budget]
    budget -= len(reply.content)
    for call in reply.tool_calls:
        call.arguments = call.arguments[: max(budget, 0)]
        budget -= len(call.arguments)
    reply.finish_reason = "length"


def _tool_calls(request: ChatRequest, seed: int) -> list[ToolCall]:
    """Tool calls for the last user message: ``call:name({...})`` directives, else mentioned tools."""
    choice = request.body.get("tool_choice", "auto")
    if not request.tools or choice == "none":
        return []
    text = content_text(request.messages[-1].get("content"))
    functions = {t["function"]["name"]: t["function"] for t in request.tools}
    wanted = _call_directives(text)
    if not wanted:
        wanted = [(n, None) for n in functions if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]
    forced = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if isinstance(forced, str):
        wanted = [w for w in wanted if w[0] == forced] or [(forced, None)]
    elif choice == "required" and not wanted:
        wanted = [(next(iter(functions)), None)]
    calls = []
    for index, (name, args) in enumerate(wanted):
        if args is None:
            args = _sample_arguments((functions.get(name) or {}).get("parameters") or {}, seed)
        arguments = json.dumps(args, separators=(",", ":"), ensure_ascii=False)
        call_id = f"call_{seed_of(seed, index, name):016x}"
        calls.append(ToolCall(call_id, name, tokenize(arguments)))
    return calls


def _call_directives(text: str) -> list[tuple[str, Any]]:
    found = []
    decoder = json.JSONDecoder()
    for match in _CALL.finditer(text):
        rest = text[match.end() :]
        args: Any = {}
        if not rest.startswith(")"):
            try:
                args, _ = decoder.raw_decode(rest)
            except json.JSONDecodeError:
                continue
        found.append((match.group(1), args))
    return found


def _sample_arguments(schema: dict[str, Any], seed: int) -> dict[str, Any]:
    """Plausible arguments for a JSON schema: every property gets a value of its type."""
    samples = {"integer": 3, "number": 1.5, "boolean": True, "array": [], "object": {}}
    args: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(prop, dict) and prop.get("enum"):
            args[name] = prop["enum"][0]
        elif kind in samples:
            args[name] = samples[kind]
        else:
            args[name] = generated_pieces(seed_of(seed, name), 1)[0].strip(" .")
    return args


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
    id: str = field(default_factory=new_generation_id)
    created: int = field(default_factory=lambda: int(time.time()))
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    emitted: int = 0
    emitted_reasoning: int = 0
    streaming: bool = False
    finished: bool = False

    @property
    def ttft(self) -> float:
        return self.state.config.ttft if self.spec.ttft is None else self.spec.ttft

    @property
    def tps(self) -> float:
        return self.state.config.tps if self.spec.tps is None else self.spec.tps

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Generation-Id": self.id}

    def usage(self, completion_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
        prompt_tokens = self.request.prompt_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost": float(cost_of(self.model, prompt_tokens, completion_tokens)),
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0},
            "cost_details": {"upstream_inference_cost": None},
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        }
        if self.spec.no_cost:
            del usage["cost"]
        return usage

    def finish(self, finish_reason: str | None, *, cancelled: bool = False) -> None:
        """Record the generation once, billing the tokens produced so far."""
        if self.finished:
            return
        self.finished = True
        if self.streaming:
            self.state.open_streams -= 1
        now = time.monotonic()
        first = self.first_token_at or now
        self.state.record(
            Generation(
                id=self.id,
                model=self.model.id,
                provider=self.model.provider,
                streamed=self.request.stream,
                created=time.time(),
                latency=first - self.started,
                generation_time=now - first,
                tokens_prompt=self.request.prompt_tokens,
                tokens_completion=self.emitted,
                tokens_reasoning=self.emitted_reasoning,
                cost=cost_of(self.model, self.request.prompt_tokens, self.emitted),
                finish_reason=finish_reason,
                native_finish_reason=native_finish(self.model, finish_reason),
                cancelled=cancelled,
                ready_at=now + self.state.config.generation_delay,
            )
        )

    def _base(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.model.provider,
            "model": self.model.id,
            "object": kind,
            "created": self.created,
        }

    # Non-streaming ------------------------------------------------------------------------------

    async def body(self) -> bytes:
        """The whole reply after the time a stream would have taken; faults become error answers."""
        reply = self.reply
        tokens = reply.completion_tokens
        delay = self.ttft + (self.spec.stall or 0) + (tokens / self.tps if self.tps else 0)
        await asyncio.sleep(delay)
        failed_after = self.spec.error_after if self.spec.error_after is not None else self.spec.drop_after
        if failed_after is not None:
            code = self.spec.error_code or 502
            raise SimError(code, "Provider returned error", {"error_type": error_type(code)})
        self.first_token_at = self.started + self.ttft
        self.emitted = tokens
        self.emitted_reasoning = len(reply.reasoning)
        self.finish(reply.finish_reason)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(reply.content),
            "refusal": None,
            "reasoning": "".join(reply.reasoning) or None,
        }
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
            data["usage"] = self.usage(tokens, len(reply.reasoning))
        encoded = json.dumps(data).encode()
        return encoded[: len(encoded) // 2] if self.spec.malformed_after is not None else encoded

    # Streaming ----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[bytes]:
        """SSE bytes, paced by an absolute schedule so high token rates stay accurate."""
        self.streaming = True
        self.state.open_streams += 1
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
            yield chunk
            self.first_token_at = self.first_token_at or time.monotonic()
            self.emitted += tokens
            self.emitted_reasoning += reasoning
        usage = [] if spec.no_usage else [self._usage_chunk()]
        finish = [self._finish_chunk()]
        self.finish(self.reply.finish_reason)
        for chunk in usage + finish if spec.usage_before_finish else finish + usage:
            yield chunk
        yield DONE

    def cancel(self) -> None:
        """The client went away: bill what was produced, mark it cancelled."""
        self.finish(None, cancelled=True)

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
        """The reply as (kind, tool index, piece); kind "call" opens a tool call and is not a token."""
        units = [("reasoning", 0, p) for p in self.reply.reasoning]
        units += [("content", 0, p) for p in self.reply.content]
        for index, call in enumerate(self.reply.tool_calls):
            units.append(("call", index, ""))
            units += [("arguments", index, p) for p in call.arguments]
        return units

    def _next_chunk(
        self, units: list[tuple[str, int, str]], position: int, limit: int
    ) -> tuple[bytes, int, int, int]:
        """One chunk of up to ``limit`` tokens of the same kind; returns it, the new position, token counts."""
        kind, index, _ = units[position]
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
        if kind == "reasoning":
            return self._delta_chunk({"content": "", "reasoning": text}), end, count, count
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

    def _error_chunk(self) -> bytes:
        code = self.spec.error_code or 502
        choice = {
            "index": 0,
            "delta": {"content": ""},
            "finish_reason": "error",
            "native_finish_reason": "error",
            "logprobs": None,
        }
        error = {
            "code": code,
            "message": "Provider returned error",
            "metadata": {"error_type": error_type(code)},
        }
        return _sse({**self._base("chat.completion.chunk"), "error": error, "choices": [choice]})


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"

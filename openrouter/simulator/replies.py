"""The reply a model "gives": deterministic text, echo, tool calls, reasoning, citations and images, cut at
max_tokens.

Reasoning follows the ``reasoning`` object: ``effort`` sets its length (``none`` or ``enabled: false`` turns
it off), ``max_tokens`` caps it, ``exclude`` keeps it from the response while it is still generated and
billed as output. It comes with ``reasoning_details`` in the provider's format: Anthropic's signed
``reasoning.text``, OpenAI's ``reasoning.summary`` plus ``reasoning.encrypted``, else plain ``reasoning.text``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from openrouter.simulator.chat import ChatRequest
from openrouter.simulator.faults import FaultSpec
from openrouter.simulator.images import png_data_url
from openrouter.simulator.state import SimModel, SimState
from openrouter.simulator.textgen import (
    content_text,
    default_length,
    echo_text,
    generated_pieces,
    reasoning_pieces,
    reasoning_signature,
    seed_of,
    tokenize,
    word,
)

_CALL = re.compile(r"call:([A-Za-z0-9_.\-]+)\(")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: list[str]


EFFORT_ROUNDS = {"minimal": 1, "low": 1, "medium": 2, "high": 4, "xhigh": 6}


@dataclass
class Reply:
    """What the model "says": reasoning, then content or tool calls (and images), and why it stopped."""

    reasoning: list[str]
    content: list[str]
    tool_calls: list[ToolCall]
    finish_reason: str
    reasoning_shown: bool = True
    reasoning_format: str = "unknown"
    images: list[str] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + sum(len(c.arguments) for c in self.tool_calls)

    @property
    def signature(self) -> str:
        return reasoning_signature("".join(self.reasoning))

    def reasoning_details(self, text: str | None = None) -> list[dict[str, Any]]:
        """The reasoning as ``reasoning_details`` items (of `text`, a streamed piece, when given)."""
        whole = text is None
        text = "".join(self.reasoning) if whole else text
        fmt = self.reasoning_format
        if fmt.startswith("openai"):
            details: list[dict[str, Any]] = [{"type": "reasoning.summary", "summary": text, "format": fmt, "index": 0}]
            if whole:
                secret = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
                details.append({"type": "reasoning.encrypted", "data": secret, "format": fmt, "index": 1})
            return details
        item: dict[str, Any] = {"type": "reasoning.text", "text": text, "format": fmt, "index": 0}
        if whole and fmt.startswith("anthropic"):
            item["signature"] = self.signature
        return [item]


def reasoning_format(model: SimModel) -> str:
    vendor = model.id.split("/", 1)[0]
    return {"anthropic": "anthropic-claude-v1", "openai": "openai-responses-v1"}.get(vendor, "unknown")


def plan_reply(
    state: SimState, request: ChatRequest, model: SimModel, spec: FaultSpec, *, images: bool = False
) -> Reply:
    """The deterministic reply for this request on this model, cut at ``max_tokens``."""
    seed = seed_of(model.id, request.messages)
    last = request.messages[-1]
    rounds, shown = _reasoning(model, request.body)
    reasoning = [p for n in range(rounds) for p in reasoning_pieces(seed + n)]
    cap = (
        (request.body.get("reasoning") or {}).get("max_tokens")
        if isinstance(request.body.get("reasoning"), dict)
        else None
    )
    if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0:
        reasoning = reasoning[:cap]
    content: list[str] = []
    calls = _tool_calls(request, seed) if last["role"] == "user" else []
    if not calls:
        content = _content(state, request, spec, seed, last)
    reply = Reply(reasoning, content, calls, "tool_calls" if calls else "stop", shown, reasoning_format(model))
    if images and not calls:
        reply.images = [png_data_url(seed)]
    if request.max_tokens is not None and reply.completion_tokens > request.max_tokens:
        _cut(reply, request.max_tokens)
    return reply


def _content(state: SimState, request: ChatRequest, spec: FaultSpec, seed: int, last: dict[str, Any]) -> list[str]:
    text = content_text(last.get("content"))
    if last["role"] == "tool":
        return tokenize(f"The result is {text}.")
    echoed = echo_text(text) if last["role"] == "user" else None
    if echoed is not None:
        return tokenize(echoed)
    return generated_pieces(seed, spec.tokens or state.config.reply_tokens or default_length(seed))


def _reasoning(model: SimModel, body: dict[str, Any]) -> tuple[int, bool]:
    """How many rounds of thought the model generates (0: none), and whether they are shown."""
    options = body.get("reasoning")
    options = options if isinstance(options, dict) else {}
    shown = not options.get("exclude") and body.get("include_reasoning") is not False
    effort = options.get("effort")
    if options.get("enabled") is False or effort == "none":
        return (1, False) if model.always_reasons else (0, False)
    asked = bool(options) or body.get("include_reasoning") is True
    if not (model.always_reasons or (asked and "reasoning" in model.supported_parameters)):
        return 0, False
    return EFFORT_ROUNDS.get(effort, 1) if isinstance(effort, str) else 1, shown


def _cut(reply: Reply, budget: int) -> None:
    reply.reasoning = reply.reasoning[:budget]
    budget -= len(reply.reasoning)
    reply.content = reply.content[:budget]
    budget -= len(reply.content)
    for call in reply.tool_calls:
        call.arguments = call.arguments[: max(budget, 0)]
        budget -= len(call.arguments)
    reply.finish_reason = "length"
    reply.images = []


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
            args[name] = word(seed_of(seed, name))
    return args

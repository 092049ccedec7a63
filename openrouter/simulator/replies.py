"""The reply a model "gives": deterministic text, echo, tool calls and reasoning, cut at max_tokens."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from openrouter.simulator.chat import ChatRequest
from openrouter.simulator.faults import FaultSpec
from openrouter.simulator.state import SimModel, SimState
from openrouter.simulator.textgen import (
    content_text,
    default_length,
    echo_text,
    generated_pieces,
    reasoning_pieces,
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


def _content(state: SimState, request: ChatRequest, spec: FaultSpec, seed: int, last: dict[str, Any]) -> list[str]:
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
            args[name] = word(seed_of(seed, name))
    return args

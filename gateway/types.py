"""What goes into and comes out of the metered path."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openrouter.events import Usage

AUTO_MODELS = ("orweb/auto", "orweb/auto:cost", "orweb/auto:speed", "orweb/auto:quality")


@dataclass
class ChatRequest:
    """An OpenAI-style chat request, as the gateway accepts it from every source.

    `endpoint` says which OpenRouter call it becomes: a chat completion, embeddings of the messages' texts,
    or a Responses API call (the same conversation in the Responses shape). `params` carries the
    pass-through fields (temperature, top_p, stop, seed, tools, tool_choice, response_format, reasoning,
    ...), checked at admission against the one table in `gateway.params`:
    a field that would change who pays or where the request goes is refused, an unknown one dropped.
    """

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    fallback_models: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    endpoint: str = "chat"  # or "embeddings" (each message's content is one input) or "responses"
    # Ask OpenRouter's response cache (`X-OpenRouter-Cache: true`): an identical earlier answer comes back
    # as a new generation billed nothing, which the ledger records at $0 like any other.
    response_cache: bool = False


@dataclass
class CallResult:
    """How a call ended, as settled in the ledger."""

    ledger_id: int | None
    status: str  # ok / error / cancelled / incomplete
    requested_model: str
    served_model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    cost_source: str
    ttft_ms: int | None
    latency_ms: int
    generation_id: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (model, why) for fallbacks and auto


@dataclass
class Completion:
    """A finished non-streaming call."""

    content: str
    reasoning: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    result: CallResult
    raw: dict[str, Any] = field(default_factory=dict)
    reasoning_details: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    usage: Usage | None = None

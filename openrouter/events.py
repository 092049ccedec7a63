"""What a streamed completion yields: small immutable events, cheap to build and to pass between tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openrouter.errors import OpenRouterError


@dataclass(frozen=True, slots=True)
class Started:
    """The first chunk arrived: which generation, model and provider are answering."""

    generation_id: str
    model: str
    provider: str | None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Reasoning text, and the chunk's raw `reasoning_details` items (to be sent back unmodified next turn)."""

    text: str
    details: tuple = ()


@dataclass(frozen=True, slots=True)
class Annotations:
    """`annotations` of a chunk or message as sent (`url_citation` citations, parsed `file`s), as dicts."""

    items: tuple


@dataclass(frozen=True, slots=True)
class ImageOut:
    """An image the model produced (`delta.images` / `message.images`), as the data: URL it came in."""

    url: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of tool call `index`: `id` and `name` come with the first piece, `arguments` are appended."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and OpenRouter's reported cost in USD (exact Decimal; None when the provider sent none)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal | None
    cached_tokens: int
    reasoning_tokens: int
    cache_write_tokens: int = 0
    cost_details: dict = field(default_factory=dict)
    server_tool_use: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str
    native_reason: str | None


@dataclass(frozen=True, slots=True)
class StreamError:
    """The stream failed after it had started; always the last event."""

    error: OpenRouterError


Event = Started | TextDelta | ReasoningDelta | Annotations | ImageOut | ToolCallDelta | Usage | Finish | StreamError


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _cost(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        return None


def usage_from_json(usage: dict[str, Any]) -> Usage:
    """Build `Usage` from OpenRouter's usage object (parsed with Decimal floats); missing fields are 0.

    `cost_details` (`upstream_inference_cost` is what a BYOK provider charged: never added to `cost`) and
    `server_tool_use_details` are kept as reported, with money as decimal strings.
    """
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = usage.get("total_tokens")
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(total) if total is not None else prompt + completion,
        cost=_cost(usage.get("cost")),
        cached_tokens=_int(prompt_details.get("cached_tokens")),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        cache_write_tokens=_int(prompt_details.get("cache_write_tokens")),
        cost_details=_money_strings(usage.get("cost_details")),
        server_tool_use=_counts(usage.get("server_tool_use_details")),
    )


def _money_strings(details: Any) -> dict[str, str | None]:
    """`cost_details` with every amount as an exact decimal string (None stays None), unknown shapes dropped."""
    if not isinstance(details, dict):
        return {}
    kept: dict[str, str | None] = {}
    for name, value in details.items():
        if value is None:
            kept[str(name)] = None
        elif (amount := _cost(value)) is not None and amount.is_finite():
            kept[str(name)] = format(amount, "f")
    return kept


def _counts(details: Any) -> dict[str, int]:
    """`server_tool_use_details` as {name: count}, e.g. {"web_search_requests": 1}."""
    if not isinstance(details, dict):
        return {}
    return {str(name): _int(value) for name, value in details.items() if not isinstance(value, bool)}

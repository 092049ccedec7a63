"""What a streamed completion yields: small immutable events, cheap to build and to pass between tasks."""

from __future__ import annotations

from dataclasses import dataclass
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
    text: str


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


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str
    native_reason: str | None


@dataclass(frozen=True, slots=True)
class StreamError:
    """The stream failed after it had started; always the last event."""

    error: OpenRouterError


Event = Started | TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish | StreamError


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

    `cost_details.upstream_inference_cost` is what a BYOK provider charged and is deliberately ignored.
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
    )

"""How a reply's upstream calls add up (`Totals`: tokens, cost, timing, what it thought, cited and drew)
and how the reply ended (`Outcome`), including a refusal by the gateway before any call."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chat.models import Message
from gateway.types import CallResult
from openrouter.events import Usage
from orweb.errors import BudgetExceeded, GatewayError, RateLimitExceeded, UpstreamFailed
from orweb.money import format_usd


@dataclass
class Totals:
    """What all steps of one reply add up to."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    ttft_ms: int | None = None
    generation_ms: int = 0
    served_model: str = ""
    provider: str = ""
    skipped: list[list[str]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    annotations: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def add_usage(self, usage: Usage) -> None:
        self.reasoning_tokens += usage.reasoning_tokens
        self.cached_tokens += usage.cached_tokens
        self.cache_write_tokens += usage.cache_write_tokens

    def add(self, result: CallResult) -> None:
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.cost += result.cost
        if self.ttft_ms is None:
            self.ttft_ms = result.ttft_ms
        self.generation_ms += max(result.latency_ms - (result.ttft_ms or 0), 0)
        self.served_model = result.served_model or self.served_model
        self.provider = result.provider or self.provider
        for model, why in result.skipped:
            if [model, why] not in self.skipped:
                self.skipped.append([model, why])

    @property
    def tokens_per_second(self) -> Decimal | None:
        if not self.completion_tokens or self.generation_ms <= 0:
            return None
        return (Decimal(self.completion_tokens) * 1000 / self.generation_ms).quantize(Decimal("0.01"))


@dataclass
class Outcome:
    status: str = Message.Status.COMPLETE
    error: str = ""
    error_code: str = ""
    refused: bool = False  # by the gateway, before any upstream call (chat.refusals)


def refusal(exc: GatewayError) -> Outcome:
    refused = not isinstance(exc, UpstreamFailed)
    if isinstance(exc, BudgetExceeded):
        return Outcome(
            Message.Status.ERROR,
            f"Not sent: the {exc.budget} has {format_usd(exc.remaining)} left, not enough for this message.",
            "budget",
            refused,
        )
    if isinstance(exc, RateLimitExceeded):
        return Outcome(
            Message.Status.ERROR,
            f"Not sent: too many requests; try again in {max(round(exc.retry_after), 1)} s.",
            "rate_limited",
            refused,
        )
    return Outcome(Message.Status.ERROR, exc.message, exc.code, refused)

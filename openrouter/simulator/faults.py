"""Faults a test can inject into the simulator, so failure handling is tested against real shapes.

A *spec* is space- or comma-separated ``key=value`` pairs, e.g. ``"status=503 retry_after=2"``.
It reaches the simulator three ways:

* the request header ``X-Sim-Fault: <spec>``;
* a directive ``[[sim <spec>]]`` anywhere in the last user message; it is stripped before the reply
  is generated. This is how a test reaches the simulator through layers that only pass messages on
  (the orweb app, a batch file);
* per model: ``POST /_sim/faults {"model": "x/y", "spec": "..."}`` (``DELETE /_sim/faults`` clears,
  ``?model=x/y`` clears one). A per-model ``status`` counts as that model failing, so a request
  with a ``models`` fallback list moves on to the next model; the other keys apply whenever that
  model serves a request. Request faults (header, directive) win over per-model ones key by key.

Keys:

==========================  ==========================================================================
``status=<code>``           answer this HTTP status with OpenRouter's body for it: 400 context length,
                            401 "User not found.", 402 credits, 403 moderation (``metadata.reasons``,
                            ``flagged_input``), 404 no endpoints, 408 timeout, 429
                            ``rate_limit_exceeded``, 502 "Provider returned error" (``metadata.raw``,
                            ``provider_name``), 503 ``provider_overloaded``; other codes get a plain body
``retry_after=<s>``         add ``Retry-After: <s>`` to that error answer
``fail_first=<k>``          with ``key=<name>``: the first k requests carrying this key answer
                            ``status`` (default 503), later ones succeed; counted per app instance
``error_after=<n>``         stream: after n tokens, a mid-stream error chunk (top-level ``error`` and
                            ``finish_reason: "error"``), then the stream ends without ``[DONE]``;
                            not streamed: the 200 body is ``{"error": {...}}``. Billed for the n tokens
``error_code=<code>``       that error's ``code`` (default 502)
``drop_after=<n>``          the connection is closed after n tokens (no finish, no ``[DONE]``, no JSON);
                            billed for the n tokens
``stall=<s>``               only keep-alives for s seconds (comments, or whitespace when not streamed) ...
``stall_after=<n>``         ... after n tokens (default 0: before the first token)
``malformed_after=<n>``     stream: one chunk of invalid JSON after n tokens, then carry on; not
                            streamed: the JSON is cut in half (billed in full all the same)
``first_byte_delay=<s>``    send nothing at all for s seconds (a client gone by then is never generated for)
``no_usage=1``              no usage (streaming: no usage chunk)
``no_cost=1``               usage without ``cost``
``usage_before_finish=1``   streaming: the usage chunk comes before the finish chunk
``tokens=<n>``              reply length in tokens (``max_tokens`` still cuts it)
``ttft=<s>``, ``tps=<n>``   time to first token and tokens per second for this request
==========================  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from typing import Any

from openrouter.simulator.errors import SimError


class FaultSpecError(ValueError):
    """A fault spec that doesn't parse: reported to the test as a 400 so typos don't pass silently."""


@dataclass(frozen=True)
class FaultSpec:
    """A parsed fault spec; ``None`` means "not set", so specs can be layered."""

    status: int | None = None
    retry_after: float | None = None
    fail_first: int | None = None
    key: str | None = None
    error_after: int | None = None
    error_code: int | None = None
    drop_after: int | None = None
    stall: float | None = None
    stall_after: int | None = None
    malformed_after: int | None = None
    first_byte_delay: float | None = None
    no_usage: bool | None = None
    no_cost: bool | None = None
    usage_before_finish: bool | None = None
    tokens: int | None = None
    ttft: float | None = None
    tps: float | None = None

    @classmethod
    def parse(cls, spec: str) -> FaultSpec:
        """Parse ``"key=value key=value"`` (commas work as separators too)."""
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in re.split(r"[\s,]+", spec.strip()):
            if not item:
                continue
            name, sep, raw = item.partition("=")
            if not sep or name not in types:
                raise FaultSpecError(f"Invalid sim fault spec {spec!r}: unknown item {item!r}")
            try:
                values[name] = _convert(types[name], raw)
            except ValueError as exc:
                raise FaultSpecError(f"Invalid sim fault spec {spec!r}: bad value for {name}") from exc
        if values.get("fail_first") is not None and not values.get("key"):
            raise FaultSpecError(f"Invalid sim fault spec {spec!r}: fail_first needs key=<name>")
        return cls(**values)

    def over(self, base: FaultSpec) -> FaultSpec:
        """This spec layered over ``base``: keys set here win."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return dataclasses.replace(base, **changes)

    def __str__(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name) is not None)


def _convert(type_name: str, raw: str) -> Any:
    if type_name.startswith("int"):
        return int(raw)
    if type_name.startswith("float"):
        return float(raw)
    if type_name.startswith("bool"):
        if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
            raise ValueError(raw)
        return raw.lower() in {"1", "true", "yes"}
    return raw


_ERROR_TYPES = {
    400: "invalid_request",
    401: "authentication",
    402: "payment_required",
    403: "content_policy_violation",
    404: "not_found",
    408: "timeout",
    429: "rate_limit_exceeded",
    502: "provider_unavailable",
    503: "provider_overloaded",
}


def error_type(code: int) -> str:
    """The ``metadata.error_type`` OpenRouter uses for a status."""
    return _ERROR_TYPES.get(code, "server_error")


def fault_error(
    status: int,
    *,
    model: str,
    provider: str,
    prompt: str,
    prompt_tokens: int,
    max_tokens: int,
    context_length: int,
    retry_after: float | None = None,
) -> SimError:
    """The error OpenRouter answers for ``status``, with its real message and metadata."""
    headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else {}
    message, metadata = _fault_body(status, model, provider, prompt, prompt_tokens, max_tokens, context_length)
    return SimError(status, message, metadata, headers=headers)


def _fault_body(
    status: int,
    model: str,
    provider: str,
    prompt: str,
    prompt_tokens: int,
    max_tokens: int,
    context_length: int,
) -> tuple[str, dict[str, Any] | None]:
    if status == 400:
        return context_length_message(context_length, prompt_tokens, max_tokens), {
            "error_type": "context_length_exceeded"
        }
    if status == 401:
        return "User not found.", None
    if status == 402:
        return credits_message(max_tokens, 0), {"error_type": "payment_required"}
    if status == 403:
        return (
            f'{model} requires moderation on {provider}. Your input was flagged for "harassment". '
            "No credits were charged.",
            {
                "reasons": ["harassment"],
                "flagged_input": prompt[:100],
                "provider_name": provider,
                "model_slug": model,
            },
        )
    if status == 404:
        return f"No endpoints found for {model}.", None
    if status == 408:
        return "Request timed out", {"error_type": "timeout"}
    if status == 429:
        return (
            f"{model} is temporarily rate-limited upstream. Please retry shortly, or add your own key to "
            "accumulate your rate limits: https://openrouter.ai/settings/integrations",
            {
                "raw": f"{model} is temporarily rate-limited upstream.",
                "provider_name": provider,
                "error_type": "rate_limit_exceeded",
            },
        )
    if status == 502:
        return "Provider returned error", {
            "raw": '{"error":{"message":"upstream connect error or disconnect/reset before headers"}}',
            "provider_name": provider,
            "error_type": "provider_unavailable",
        }
    if status == 503:
        return f"{provider} is overloaded. Please try again later.", {
            "provider_name": provider,
            "error_type": "provider_overloaded",
        }
    return "Internal Server Error", {"error_type": error_type(status)}


def context_length_message(context_length: int, prompt_tokens: int, max_tokens: int) -> str:
    """OpenRouter's 400 text when prompt plus max_tokens don't fit the model's window."""
    return (
        f"This endpoint's maximum context length is {context_length} tokens. However, you requested about "
        f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} of text input, {max_tokens} in the output). "
        'Please reduce the length of either one, or use the "middle-out" transform to compress your prompt '
        "automatically."
    )


def credits_message(max_tokens: int, affordable: int) -> str:
    """OpenRouter's 402 text when remaining credit can't cover ``max_tokens``."""
    return (
        f"This request requires more credits, or fewer max_tokens. You requested up to {max_tokens} tokens, "
        f"but can only afford {affordable}. To increase, visit https://openrouter.ai/settings/credits and "
        "upgrade to a paid account"
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)

"""What `/v1` answers, in OpenAI's shapes with OpenRouter's additions: `chat.completion` objects (`model` =
the model that served, plus `provider` and `usage.cost` in USD as a JSON number), the models list with
OpenRouter's pricing and context, and errors as `{"error": {"message", "type", "param", "code"}}` with the
HTTP status that says what a failure means to the caller.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

from catalog.models import CatalogModel
from gateway.types import AUTO_MODELS, CallResult, Completion
from openrouter.errors import RequestTimeout
from openrouter.events import Usage
from orweb.errors import GatewayError, RateLimitExceeded, UpstreamFailed
from orweb.money import json_usd, plain_usd

AUTO_PRICING = {"prompt": "-1", "completion": "-1"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def usage_json(result: CallResult, usage: Usage | None = None) -> dict[str, Any]:
    """OpenAI's `usage` with OpenRouter's details as upstream reported them (cached and cache-write tokens,
    reasoning tokens, `cost_details`, `server_tool_use_details`), and the cost the ledger charged."""
    body: dict[str, Any] = {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
        "cost": json_usd(result.cost),
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens if usage else 0,
            "cache_write_tokens": usage.cache_write_tokens if usage else 0,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens if usage else 0},
    }
    if usage is not None and usage.cost_details:
        body["cost_details"] = {
            name: None if value is None else json_usd(Decimal(value)) for name, value in usage.cost_details.items()
        }
    if usage is not None and usage.server_tool_use:
        body["server_tool_use_details"] = dict(usage.server_tool_use)
    return body


def image_parts(urls: list[str]) -> list[dict[str, Any]]:
    """Generated images as OpenRouter sends them (`message.images` / `delta.images`)."""
    return [{"type": "image_url", "image_url": {"url": url}} for url in urls]


def completion_json(completion: Completion) -> dict[str, Any]:
    """A `chat.completion` object for a finished non-streaming call; reasoning, its `reasoning_details`,
    `annotations` and `images` relayed as they came."""
    result = completion.result
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.reasoning:
        message["reasoning"] = completion.reasoning
    if completion.reasoning_details:
        message["reasoning_details"] = completion.reasoning_details
    if completion.tool_calls:
        message["tool_calls"] = completion.tool_calls
        message["content"] = completion.content or None
    if completion.annotations:
        message["annotations"] = completion.annotations
    if completion.images:
        message["images"] = image_parts(completion.images)
    raw = completion.raw or {}
    return {
        "id": result.generation_id or f"orweb-{result.ledger_id}",
        "object": "chat.completion",
        "created": raw.get("created") or int(time.time()),
        "model": result.served_model,
        "provider": result.provider,
        "choices": [{"index": 0, "message": message, "finish_reason": completion.finish_reason, "logprobs": None}],
        "usage": usage_json(result, completion.usage),
    }


def _price(value: Decimal | None) -> str:
    return plain_usd(value) or "-1"


def models_json(models: list[CatalogModel]) -> dict[str, Any]:
    """The `orweb/auto*` choices, then these models, in OpenAI's list shape plus OpenRouter's pricing and
    context (prices per token as exact decimal strings; "-1" where the price depends on the model chosen)."""
    entries: list[dict[str, Any]] = [
        {
            "id": model_id,
            "object": "model",
            "created": 0,
            "owned_by": "orweb",
            "name": model_id,
            "pricing": AUTO_PRICING,
            "context_length": None,
        }
        for model_id in AUTO_MODELS
    ]
    for model in models:
        entries.append(
            {
                "id": model.id,
                "object": "model",
                "created": int(model.upstream_created.timestamp()) if model.upstream_created else 0,
                "owned_by": model.id.split("/", 1)[0],
                "name": model.name,
                "pricing": {
                    "prompt": _price(model.prompt_price),
                    "completion": _price(model.completion_price),
                    "request": _price(model.request_price),
                    "image": _price(model.image_price),
                },
                "context_length": model.context_length,
                "max_completion_tokens": model.max_completion_tokens,
                "input_modalities": model.input_modalities,
                "output_modalities": model.output_modalities,
                "supported_parameters": model.supported_parameters,
            }
        )
    return {"object": "list", "data": entries}


def error_json(message: str, status: int, *, code: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error"), "param": param, "code": code}}


def upstream_status(error: UpstreamFailed) -> int:
    """What /v1 answers when OpenRouter failed, after the gateway's retries and fallbacks.

    The client's own request problems keep their meaning (400 bad parameters, 403 moderation, 404 no
    provider serves it, 429 rate limited, with Retry-After). Failures of *our* account are not the
    caller's: OpenRouter's 401 (our server key) becomes 502, and 402 (our credit is exhausted) becomes
    503 (service unavailable until an admin tops up). 408 and idle timeouts become 504; other 5xx, broken
    or incomplete responses 502, and 503 stays 503.
    """
    if isinstance(error.upstream, RequestTimeout):
        return 504
    status = getattr(error.upstream, "status", None) or error.status
    if status in (400, 403, 404, 429, 503):
        return status
    if status == 402:
        return 503
    return 504 if status == 408 else 502


def error_response_parts(error: GatewayError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for a gateway refusal or failure."""
    status = upstream_status(error) if isinstance(error, UpstreamFailed) else error.status
    headers: dict[str, str] = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None and (isinstance(error, RateLimitExceeded) or status in (429, 503)):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return status, error_json(error.message, status, code=error.code, param=error.param), headers

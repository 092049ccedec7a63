"""OpenAI's chat-completions wire format, translated to and from the gateway's types.

What `/v1/chat/completions` does with each request field:

* validated, then passed upstream: `messages`, `model`, `max_tokens` (or `max_completion_tokens`),
  `temperature` (0–2), `top_p` (0–1), `frequency_penalty` / `presence_penalty` (-2–2), `seed`, `stop`,
  `tools`, `tool_choice`, `parallel_tool_calls`, `response_format`, `reasoning`, `top_k`,
  `repetition_penalty`, `min_p`, `top_a`, `logit_bias`, `logprobs`, `top_logprobs`, `verbosity`.
* `models`: becomes the fallback list; the gateway checks each model against policy like `model`.
* `provider`: only preferences that *narrow* routing pass (`allow_fallbacks`, `require_parameters`,
  `data_collection`, `zdr`, `quantizations`, `ignore`, `max_price`, `sort: "price"`). `order`, `only` and
  any other `sort` are refused (400): they pick a provider that may cost more than the catalog price the
  budget hold was computed from.
* refused (400), because honouring them would change where the request goes or who pays, and dropping
  them silently would hide that: `api_key`, `base_url`, `api_base`, `baseURL`, `url`, `endpoint`,
  `plugins` (web search and file parsing are billed per use, outside the hold), `n` other than 1.
* stripped: `user` (the gateway sends its own stable id for the key's owner), `transforms` (it drops
  messages upstream, so our prompt count and context check would no longer describe what is sent),
  `usage` (a no-op upstream), `stream_options` (handled here), and every field not listed above (OpenAI
  fields OpenRouter ignores, such as `store`, `metadata`, `service_tier`): nothing unknown goes upstream.

Replies: `chat.completion` / `chat.completion.chunk` objects as OpenAI sends them, `model` = the model
that served, plus `provider` and `usage.cost` (USD, a JSON number), as OpenRouter adds them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.types import CallResult, ChatRequest, Completion
from openrouter.errors import RequestTimeout
from openrouter.events import Event, Finish, ReasoningDelta, Started, TextDelta, ToolCallDelta, Usage
from orweb.errors import GatewayError, InvalidRequest, RateLimitExceeded, UpstreamFailed

ROLES = ("system", "developer", "user", "assistant", "tool")
PASS_THROUGH = (
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning",
    "top_k",
    "repetition_penalty",
    "min_p",
    "top_a",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "verbosity",
)
REFUSED = ("api_key", "base_url", "api_base", "baseURL", "url", "endpoint", "plugins")
PROVIDER_ALLOWED = (
    "allow_fallbacks",
    "require_parameters",
    "data_collection",
    "zdr",
    "quantizations",
    "ignore",
    "max_price",
    "sort",
)
RANGES = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "frequency_penalty": (-2, 2),
    "presence_penalty": (-2, 2),
    "repetition_penalty": (0, 2),
    "min_p": (0, 1),
    "top_a": (0, 1),
}
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


@dataclass
class ApiRequest:
    """A validated request: what the gateway gets, and how the reply should be shaped."""

    chat: ChatRequest
    stream: bool
    include_usage: bool


def _invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid '{param}': {message}", param=param)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw`, or a 400 saying why not."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _check_text_parts(parts: list[Any], where: str, *, images: bool) -> None:
    allowed = ("text", "image_url") if images else ("text",)
    for i, part in enumerate(parts):
        at = f"{where}[{i}]"
        if not isinstance(part, dict) or part.get("type") not in allowed:
            raise _invalid(f"{at}.type", f"expected one of {', '.join(allowed)}")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise _invalid(f"{at}.text", "expected a string")
            continue
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url.startswith(("data:image/", "https://", "http://")):
            raise _invalid(f"{at}.image_url.url", "expected an http(s) URL or a data:image/... URL")


def _check_content(message: dict[str, Any], where: str) -> None:
    role = message["role"]
    content = message.get("content")
    if role == "assistant" and content is None and message.get("tool_calls"):
        return
    if isinstance(content, str):
        return
    if isinstance(content, list) and content:
        _check_text_parts(content, f"{where}.content", images=role == "user")
        return
    raise _invalid(f"{where}.content", "expected a string or a non-empty list of content parts")


def _check_tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise _invalid(f"{where}.tool_calls", "expected a list")
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            raise _invalid(f"{where}.tool_calls[{i}].id", "expected a string")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid(f"{where}.tool_calls[{i}].function.name", "expected a string")
        if not isinstance(function.get("arguments"), str):
            raise _invalid(f"{where}.tool_calls[{i}].function.arguments", "expected a JSON string")


def check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "expected a non-empty list of messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid(where, "expected an object")
        if message.get("role") not in ROLES:
            raise _invalid(f"{where}.role", f"expected one of {', '.join(ROLES)}")
        _check_content(message, where)
        if message["role"] == "assistant" and "tool_calls" in message:
            _check_tool_calls(message["tool_calls"], where)
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _invalid(f"{where}.tool_call_id", "a tool message needs the id of the call it answers")
    return messages


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise _invalid("tools", "expected a list")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _invalid(f"tools[{i}].type", "expected 'function'")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise _invalid(f"tools[{i}].function.name", "expected a non-empty string")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise _invalid(f"tools[{i}].function.parameters", "expected a JSON Schema object")


def _check_tool_choice(choice: Any) -> None:
    if choice in ("none", "auto", "required"):
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _invalid("tool_choice", "expected 'none', 'auto', 'required' or a named function")


def _check_response_format(value: Any) -> None:
    if not isinstance(value, dict) or value.get("type") not in RESPONSE_FORMATS:
        raise _invalid("response_format.type", f"expected one of {', '.join(RESPONSE_FORMATS)}")
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            raise _invalid("response_format.json_schema.name", "expected a string")


def _check_provider(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("provider", "expected an object")
    for name in value:
        if name not in PROVIDER_ALLOWED:
            raise _invalid(
                f"provider.{name}",
                "not allowed here: it could route to a provider that costs "
                "more than the catalog price your budget is held at",
            )
    if value.get("sort", "price") != "price":
        raise _invalid("provider.sort", "only 'price' is allowed")
    return value


def _check_params(body: dict[str, Any]) -> dict[str, Any]:
    for name, (low, high) in RANGES.items():
        if name in body and not (_is_number(body[name]) and low <= body[name] <= high):
            raise _invalid(name, f"expected a number from {low} to {high}")
    if "seed" in body and not _is_int(body["seed"]):
        raise _invalid("seed", "expected an integer")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
    ):
        raise _invalid("stop", "expected a string or a list of up to 4 strings")
    if "tools" in body:
        _check_tools(body["tools"])
    if "tool_choice" in body:
        _check_tool_choice(body["tool_choice"])
    if "response_format" in body:
        _check_response_format(body["response_format"])
    if "reasoning" in body and not isinstance(body["reasoning"], dict):
        raise _invalid("reasoning", "expected an object")
    params = {name: body[name] for name in PASS_THROUGH if name in body and body[name] is not None}
    if "provider" in body:
        params["provider"] = _check_provider(body["provider"])
    return params


def _max_tokens(body: dict[str, Any]) -> int | None:
    name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise _invalid(name, "expected a positive integer")
    return value


def _fallbacks(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise _invalid("models", "expected a list of model ids")
    return value


def parse_chat_request(body: dict[str, Any]) -> ApiRequest:
    """Validate an OpenAI chat request (see the module docstring for what happens to each field)."""
    for name in REFUSED:
        if name in body:
            raise _invalid(name, "not accepted: orweb decides where requests go and who pays for them")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _invalid("model", "required: a model id such as 'openai/gpt-4o-mini' or 'orweb/auto'")
    messages = check_messages(body.get("messages"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("stream", "expected true or false")
    if body.get("n", 1) != 1:
        raise _invalid("n", "only n=1 is supported")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise _invalid("stream_options.include_usage", "expected true or false")
    chat = ChatRequest(
        model=model.strip(),
        messages=messages,
        max_tokens=_max_tokens(body),
        fallback_models=_fallbacks(body.get("models")),
        params=_check_params(body),
    )
    return ApiRequest(chat=chat, stream=stream, include_usage=bool(options.get("include_usage")))


def usd(amount: Decimal) -> float:
    """A USD Decimal as a JSON number. Amounts carry at most 10 decimal places and 15 significant digits,
    and `repr(float(d))` of such a Decimal prints exactly its digits, so the JSON text is the exact amount."""
    return float(amount)


def usage_json(result: CallResult, *, cached_tokens: int = 0, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
        "cost": usd(result.cost),
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def _raw_usage_detail(raw: dict[str, Any], group: str, name: str) -> int:
    details = (raw.get("usage") or {}).get(group) or {}
    value = details.get(name) if isinstance(details, dict) else None
    return value if _is_int(value) else 0


def completion_json(completion: Completion) -> dict[str, Any]:
    """A `chat.completion` object for a finished non-streaming call."""
    result = completion.result
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.reasoning:
        message["reasoning"] = completion.reasoning
    if completion.tool_calls:
        message["tool_calls"] = completion.tool_calls
        message["content"] = completion.content or None
    raw = completion.raw or {}
    return {
        "id": result.generation_id or f"orweb-{result.ledger_id}",
        "object": "chat.completion",
        "created": raw.get("created") or int(time.time()),
        "model": result.served_model,
        "provider": result.provider,
        "choices": [{"index": 0, "message": message, "finish_reason": completion.finish_reason, "logprobs": None}],
        "usage": usage_json(
            result,
            cached_tokens=_raw_usage_detail(raw, "prompt_tokens_details", "cached_tokens"),
            reasoning_tokens=_raw_usage_detail(raw, "completion_tokens_details", "reasoning_tokens"),
        ),
    }


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


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


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


class ChunkWriter:
    """Turns the gateway's stream events into `chat.completion.chunk` SSE frames, in OpenAI's order:
    the role first, then content / reasoning / tool-call deltas, then one finish chunk, then (with
    `stream_options.include_usage`) a usage chunk with `choices: []`, then `[DONE]`.

    Usage is sent once the call is settled, so `usage.cost` is what the ledger charged (reported, or
    estimated from the catalog when OpenRouter sent none). Without `include_usage` the usage rides on the
    finish chunk, where OpenAI's clients ignore it and OpenRouter-aware ones find the cost.
    """

    def __init__(self, requested_model: str, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.id = ""
        self.model = requested_model
        self.provider: str | None = None
        self.created = int(time.time())
        self.finish_reason: str | None = None
        self.cached_tokens = 0
        self.reasoning_tokens = 0
        self.started = False
        self._frames: dict[str, tuple[bytes, bytes]] = {}

    def _chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        if self.provider:
            chunk["provider"] = self.provider
        chunk["choices"] = (
            [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        )
        return chunk

    def _delta(self, delta: dict[str, Any]) -> bytes:
        if self.started:
            return sse(self._chunk(delta))
        self.started = True
        return sse(self._chunk({"role": "assistant", "content": ""})) + sse(self._chunk(delta))

    def _text(self, key: str, text: str) -> bytes:
        """`_delta({key: text})`, from the bytes around the text, built once per stream: one per token."""
        if not self.started:
            return self._delta({key: text})
        frame = self._frames.get(key)
        if frame is None:
            head, hole, tail = sse(self._chunk({key: None})).partition(f'"delta":{{"{key}":null}}'.encode())
            frame = self._frames[key] = (head + hole[:-5], hole[-1:] + tail)
        return frame[0] + json.dumps(text).encode() + frame[1]

    def event(self, event: Event) -> bytes:
        """The SSE bytes for one event (empty for events that only update state)."""
        if isinstance(event, Started):
            self.id, self.model, self.provider = event.generation_id, event.model, event.provider
            self._frames.clear()
            if self.started:
                return b""
            self.started = True
            return sse(self._chunk({"role": "assistant", "content": ""}))
        if isinstance(event, TextDelta):
            return self._text("content", event.text)
        if isinstance(event, ReasoningDelta):
            return self._text("reasoning", event.text)
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index, "function": {"arguments": event.arguments}}
            if event.id:
                call["id"], call["type"] = event.id, "function"
            if event.name:
                call["function"]["name"] = event.name
            return self._delta({"tool_calls": [call]})
        if isinstance(event, Usage):
            self.cached_tokens, self.reasoning_tokens = event.cached_tokens, event.reasoning_tokens
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        return b""

    def error(self, error: Exception) -> bytes:
        """OpenRouter's mid-stream error chunk: HTTP is already 200, so the error travels in the data."""
        status = getattr(error, "status", None) or 502
        chunk = self._chunk({"content": ""}, "error")
        message = getattr(error, "message", None) or str(error)
        chunk["error"] = error_json(message, status, code="upstream_error")["error"]
        return sse(chunk)

    def end(self, result: CallResult) -> bytes:
        """Finish chunk, usage (with the settled cost) and `[DONE]`."""
        usage = usage_json(result, cached_tokens=self.cached_tokens, reasoning_tokens=self.reasoning_tokens)
        finish = self._chunk({}, self.finish_reason or result.finish_reason or "stop")
        if not self.include_usage:
            finish["usage"] = usage
            return sse(finish) + SSE_DONE
        tail = self._chunk(None)
        tail["usage"] = usage
        return sse(finish) + sse(tail) + SSE_DONE

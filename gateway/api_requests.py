"""A `/v1/chat/completions` body checked and turned into the gateway's `ChatRequest`.

The request's own fields are checked here (`model`, `models` as the fallback list, `messages` with their
content parts and tool calls, `max_tokens` / `max_completion_tokens`, `stream`, `stream_options`); every
other field follows the one table in `gateway.params` (passed, refused with a 400 naming it, or stripped).
Before any of that the body itself (`parse_body`): JSON without NaN or Infinity, nested at most MAX_DEPTH
deep, its top-level integers within 64 bits; whatever breaks a parser gets a 400 that says what, not a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway import params
from gateway.params import invalid, is_int
from gateway.types import ChatRequest
from openrouter.fees import data_url, is_pdf
from orweb.errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_DEPTH = 64
INT_LIMIT = 2**63
CONTAINERS = frozenset((dict, list))


@dataclass
class ApiRequest:
    """A validated request: what the gateway gets, and how the reply should be shaped."""

    chat: ChatRequest
    stream: bool
    include_usage: bool


def _no_constant(name: str) -> Any:
    raise InvalidRequest(f"The request body is not valid JSON: {name} is not a JSON number.")


def _too_deep() -> InvalidRequest:
    return InvalidRequest(f"The request body is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects.")


def _check_shape(body: dict[str, Any]) -> None:
    """Top-level integers within 64 bits (the database and the budget hold read `max_tokens`; deeper ones
    go upstream, where OpenRouter refuses what it can't take) and nesting within MAX_DEPTH, walked without
    recursion: a schema nested 960 deep parsed, then broke the encoder of the upstream request (a 500)."""
    for name, value in body.items():
        if type(value) is int and not -INT_LIMIT <= value < INT_LIMIT:
            raise invalid(name, "integers must be between -2^63 and 2^63 - 1")
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        # Types looked up in C: a list of five million numbers costs 70 ms here, not 500.
        if CONTAINERS.isdisjoint(map(type, children)):
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in children if type(child) in CONTAINERS)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw`, or a 400 saying why not: not JSON (NaN and Infinity included), nested
    deeper than MAX_DEPTH, or an integer outside 64 bits."""
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError as exc:
        raise _too_deep() from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from exc
    except ValueError as exc:
        # json reads integers with int(), which refuses one of more than sys.get_int_max_str_digits() digits.
        raise InvalidRequest("The request body holds an integer too large: integers must fit in 64 bits.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _check_shape(body)
    return body


def _check_file(file: Any, at: str) -> None:
    """A `file` part: a base64 data URL whose content is a PDF or UTF-8 text, whatever its name or media type
    claims. A URL is refused: the hold could not know how many pages it has to parse."""
    if not isinstance(file, dict) or not isinstance(file.get("file_data"), str):
        raise invalid(f"{at}.file.file_data", "expected a base64 data: URL")
    if "filename" in file and not isinstance(file["filename"], str):
        raise invalid(f"{at}.file.filename", "expected a string")
    decoded = data_url(file["file_data"])
    if decoded is None:
        raise invalid(f"{at}.file.file_data", "expected a base64 data: URL (links to files are not accepted)")
    data = decoded[1]
    if is_pdf(data):
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(f"{at}.file.file_data", "expected a PDF or a text file (checked from its content)") from None


def _check_parts(parts: list[Any], where: str, *, images: bool) -> None:
    allowed = ("text", "image_url", "file") if images else ("text",)
    for i, part in enumerate(parts):
        at = f"{where}[{i}]"
        if not isinstance(part, dict) or part.get("type") not in allowed:
            raise invalid(f"{at}.type", f"expected one of {', '.join(allowed)}")
        if "cache_control" in part:
            params.check_cache_control(f"{at}.cache_control", part["cache_control"])
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise invalid(f"{at}.text", "expected a string")
            continue
        if part["type"] == "file":
            _check_file(part.get("file"), at)
            continue
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url.startswith(("data:image/", "https://", "http://")):
            raise invalid(f"{at}.image_url.url", "expected an http(s) URL or a data:image/... URL")


def _check_content(message: dict[str, Any], where: str) -> None:
    role = message["role"]
    content = message.get("content")
    if role == "assistant" and content is None and message.get("tool_calls"):
        return
    if isinstance(content, str):
        return
    if isinstance(content, list) and content:
        _check_parts(content, f"{where}.content", images=role == "user")
        return
    raise invalid(f"{where}.content", "expected a string or a non-empty list of content parts")


def _check_tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise invalid(f"{where}.tool_calls", "expected a list")
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            raise invalid(f"{where}.tool_calls[{i}].id", "expected a string")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"{where}.tool_calls[{i}].function.name", "expected a string")
        if not isinstance(function.get("arguments"), str):
            raise invalid(f"{where}.tool_calls[{i}].function.arguments", "expected a JSON string")


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """The messages, if every one is a valid OpenAI chat message; a 400 naming the first bad field."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "expected a non-empty list of messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(where, "expected an object")
        if message.get("role") not in ROLES:
            raise invalid(f"{where}.role", f"expected one of {', '.join(ROLES)}")
        _check_content(message, where)
        if message["role"] == "assistant" and "tool_calls" in message:
            _check_tool_calls(message["tool_calls"], where)
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise invalid(f"{where}.tool_call_id", "a tool message needs the id of the call it answers")
    return messages


def _max_tokens(body: dict[str, Any]) -> int | None:
    name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    value = body.get(name)
    if value is None:
        return None
    if not is_int(value) or value < 1:
        raise invalid(name, "expected a positive integer")
    return value


def _fallbacks(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, str) and m and "\x00" not in m for m in value):
        raise invalid("models", "expected a list of model ids (without NUL characters)")
    return value


def parse_chat_request(body: dict[str, Any]) -> ApiRequest:
    """Validate an OpenAI chat request (see `gateway.params` for what happens to each field)."""
    passed = params.check(body)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("model", "required: a model id such as 'openai/gpt-4o-mini' or 'orweb/auto'")
    if "\x00" in model:
        raise invalid("model", "a model id can't contain NUL characters")
    messages = check_messages(body.get("messages"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream", "expected true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise invalid("stream_options.include_usage", "expected true or false")
    chat = ChatRequest(
        model=model.strip(),
        messages=messages,
        max_tokens=_max_tokens(body),
        fallback_models=_fallbacks(body.get("models")),
        params=passed,
    )
    return ApiRequest(chat=chat, stream=stream, include_usage=bool(options.get("include_usage")))

"""`/v1/responses`: OpenRouter's stateless Responses API (beta) through the metered path.

A Responses body is checked and read as the conversation it is (`instructions` a system message, `input`
items messages, `max_output_tokens` the output cap), so admission meters it like a chat completion; what
admission let through is written back in the Responses shape for upstream (`responses_body`). `store:
true` and `previous_response_id` are refused: orweb keeps nothing between calls. The answer is relayed as
OpenRouter sent it, with the cost the ledger charged; a stream is retold from the metered events
(`ResponsesWriter`), ending with `response.completed` once the call is settled.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from gateway import params
from gateway.api_requests import ApiRequest, check_messages
from gateway.api_responses import error_json
from gateway.params import invalid, is_int
from gateway.types import CallResult, ChatRequest
from openrouter.events import Annotations, Event, Finish, ReasoningDelta, Started, TextDelta, ToolCallDelta, Usage
from orweb.money import json_usd

_CHAT_FIELDS = ("temperature", "top_p", "reasoning", "provider", "plugins", "tool_choice", "parallel_tool_calls")


def _part(part: Any, at: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "image_url", "image_url": {"url": part["image_url"]}}
    if kind == "input_file":
        return {"type": "file", "file": {"filename": part.get("filename"), "file_data": part.get("file_data")}}
    raise invalid(f"{at}.type", "expected input_text, input_image or input_file with its value")


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str) and value:
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise invalid("input", "expected a string or a non-empty list of items")
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        at = f"input[{i}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = [_part(part, f"{at}.content[{j}]") for j, part in enumerate(content)]
            messages.append({"role": item.get("role"), "content": content})
        elif kind == "function_call":
            function = {"name": item.get("name"), "arguments": item.get("arguments")}
            call = {"id": item.get("call_id"), "type": "function", "function": function}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": output})
        else:
            raise invalid(f"{at}.type", "expected message, function_call or function_call_output")
    return messages


def _chat_tools(tools: Any) -> list[Any]:
    """Responses function tools (`{type, name, parameters}`) in the chat shape (`{type, function: {...}}`)."""
    if not isinstance(tools, list):
        raise invalid("tools", "expected a list")
    return [
        {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
        if isinstance(t, dict) and t.get("type") == "function" and "function" not in t
        else t
        for t in tools
    ]


def parse_responses_request(body: dict[str, Any]) -> ApiRequest:
    """Validate a Responses request (400 naming the field) as the gateway's request."""
    if body.get("store"):
        raise invalid("store", "orweb keeps nothing between calls: send store=false (or leave it out)")
    if body.get("previous_response_id") is not None:
        raise invalid("previous_response_id", "not supported: send the whole conversation in input")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or "\x00" in model:
        raise invalid("model", "required: a model id such as 'openai/gpt-4o-mini'")
    messages = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid("instructions", "expected a string")
        messages.append({"role": "system", "content": instructions})
    messages = check_messages(messages + _messages(body.get("input")))
    fields = {name: body[name] for name in _CHAT_FIELDS if name in body}
    if body.get("tools") is not None:
        fields["tools"] = _chat_tools(body["tools"])
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and not (is_int(max_tokens) and max_tokens > 0):
        raise invalid("max_output_tokens", "expected a positive integer")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream", "expected true or false")
    chat = ChatRequest(
        model=model.strip(), messages=messages, max_tokens=max_tokens, params=params.check(fields), endpoint="responses"
    )
    return ApiRequest(chat=chat, stream=stream, include_usage=True)


def _item(message: dict[str, Any]) -> list[dict[str, Any]]:
    role, content = message["role"], message.get("content")
    if role == "tool":
        return [{"type": "function_call_output", "call_id": message["tool_call_id"], "output": content}]
    items = [
        {
            "type": "function_call",
            "call_id": c["id"],
            "name": c["function"]["name"],
            "arguments": c["function"]["arguments"],
        }
        for c in message.get("tool_calls") or ()
    ]
    if isinstance(content, list):
        text = "output_text" if role == "assistant" else "input_text"
        parts = []
        for part in content:
            if part["type"] == "text":
                parts.append({"type": text, "text": part["text"]})
            elif part["type"] == "image_url":
                parts.append({"type": "input_image", "image_url": part["image_url"]["url"]})
            else:
                parts.append({"type": "input_file", **part["file"]})
        content = parts
    if content is not None:
        items.insert(0, {"type": "message", "role": role, "content": content})
    return items


def responses_body(admitted: dict[str, Any]) -> dict[str, Any]:
    """The upstream Responses body from the admitted chat body (the hold's max_tokens as max_output_tokens)."""
    messages = admitted["messages"]
    body: dict[str, Any] = {
        "model": admitted["model"],
        "max_output_tokens": admitted["max_tokens"],
        "user": admitted["user"],
    }
    if messages and messages[0]["role"] == "system" and isinstance(messages[0].get("content"), str):
        body["instructions"] = messages[0]["content"]
        messages = messages[1:]
    body["input"] = [item for message in messages for item in _item(message)]
    for name in (*_CHAT_FIELDS, "tools"):
        if name in admitted:
            body[name] = admitted[name]
    if "tools" in body:
        body["tools"] = [
            {"type": "function", **t["function"]} if isinstance(t, dict) and "function" in t else t
            for t in body["tools"]
        ]
    return body


def settled_response(raw: dict[str, Any], result: CallResult) -> dict[str, Any]:
    """The upstream body as it came (embeddings or a response), its `usage.cost` the ledger's charge. The
    client read its numbers as Decimal (exact money); they go back out as the JSON numbers they were."""
    body = _json_numbers(raw)
    if isinstance(body.get("usage"), dict):
        body["usage"] = {**body["usage"], "cost": json_usd(result.cost)}
    return body


def _json_numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: _json_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_numbers(item) for item in value]
    return value


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data}, separators=(',', ':'))}\n\n".encode()


class ResponsesWriter:
    """The metered events of a streamed Responses call as Responses server-sent events."""

    def __init__(self, requested_model: str) -> None:
        self.id = ""
        self.model = requested_model
        self.provider: str | None = None
        self.created = int(time.time())
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.annotations: list[dict[str, Any]] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: Usage | None = None
        self.status = "completed"
        self.sequence = 0

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        self.sequence += 1
        return _sse(kind, {"sequence_number": self.sequence, **data})

    def _response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        response = {"id": self.id, "object": "response", "created_at": self.created, "model": self.model}
        return {**response, "provider": self.provider, "status": status, "output": output, "error": None}

    def event(self, event: Event) -> bytes:
        if isinstance(event, Started):
            self.id, self.model, self.provider = event.generation_id, event.model, event.provider
            return self._event("response.created", {"response": self._response("in_progress", [])})
        if isinstance(event, TextDelta):
            self.text.append(event.text)
            delta = {"item_id": f"msg_{self.id}", "output_index": 0, "content_index": 0, "delta": event.text}
            return self._event("response.output_text.delta", delta)
        if isinstance(event, ReasoningDelta) and event.text:
            self.reasoning.append(event.text)
            return self._event(
                "response.reasoning.delta", {"item_id": f"rs_{self.id}", "output_index": 0, "delta": event.text}
            )
        if isinstance(event, ToolCallDelta):
            call = self.calls.setdefault(
                event.index, {"type": "function_call", "call_id": "", "name": "", "arguments": ""}
            )
            call["call_id"] = event.id or call["call_id"]
            call["name"] = event.name or call["name"]
            call["arguments"] += event.arguments
        elif isinstance(event, Annotations):
            self.annotations += list(event.items)
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish) and event.reason == "length":
            self.status = "incomplete"
        return b""

    def end(self, result: CallResult) -> bytes:
        """The finished items, then `response.completed` with the usage and the settled cost."""
        output: list[dict[str, Any]] = []
        if self.reasoning:
            output.append(
                {
                    "type": "reasoning",
                    "id": f"rs_{self.id}",
                    "summary": [{"type": "summary_text", "text": "".join(self.reasoning)}],
                }
            )
        output += [
            {**call, "id": f"fc_{call['call_id']}", "status": "completed"} for _, call in sorted(self.calls.items())
        ]
        text = {"type": "output_text", "text": "".join(self.text), "annotations": self.annotations}
        if self.text or not self.calls:
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{self.id}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [text],
                }
            )
        frames = b"".join(
            self._event("response.output_item.done", {"output_index": i, "item": item}) for i, item in enumerate(output)
        )
        usage = self.usage
        response = self._response(self.status, output)
        response["usage"] = {
            "input_tokens": result.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens if usage else 0},
            "output_tokens": result.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens if usage else 0},
            "total_tokens": result.prompt_tokens + result.completion_tokens,
            "cost": json_usd(result.cost),
        }
        return frames + self._event("response.completed", {"response": response})

    def error(self, error: Exception) -> bytes:
        status = getattr(error, "status", None) or 502
        message = getattr(error, "message", None) or str(error)
        failed = self._response("failed", [])
        failed["error"] = error_json(message, status, code="upstream_error")["error"]
        return self._event("response.failed", {"response": failed})

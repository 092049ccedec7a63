"""``POST /responses``: OpenRouter's stateless Responses API (beta), served by the same generation as a chat
completion and billed the same way.

``input`` (a string, or message items with ``input_text`` / ``input_image`` parts, ``function_call`` and
``function_call_output`` items) and ``instructions`` become chat messages; ``max_output_tokens``,
``reasoning`` and function ``tools`` map across. ``store: true`` and ``previous_response_id`` are refused
(400): nothing is kept between calls. Streamed, the chat chunks are retold as Responses events:
``response.created``, ``response.output_text.delta``, ``response.reasoning.delta``,
``response.output_item.done``, then ``response.completed`` with usage, or ``response.failed``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from openrouter.simulator.delivery import Completion
from openrouter.simulator.errors import SimError


def chat_body(body: Any) -> dict[str, Any]:
    """The chat completion body equivalent to a Responses request (400 for what is refused or malformed)."""
    if not isinstance(body, dict):
        raise SimError(400, "Invalid JSON body: expected an object")
    if body.get("store"):
        raise SimError(400, "store: only stateless requests are supported (store must be false)")
    if body.get("previous_response_id") is not None:
        raise SimError(400, "previous_response_id: not supported; send the whole conversation in input")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise SimError(400, "instructions: expected a string")
        messages.append({"role": "system", "content": instructions})
    messages += _messages(body.get("input"))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages, "stream": body.get("stream", False)}
    for name in ("temperature", "top_p", "reasoning", "provider", "plugins", "user"):
        if name in body:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools") is not None:
        chat["tools"] = _tools(body["tools"])
    return chat


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise SimError(400, "input: expected a string or a non-empty array of items")
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message":
            messages.append({"role": item.get("role"), "content": _content(item.get("content"), i)})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": str(item.get("output", ""))}
            )
        else:
            raise SimError(400, f"input[{i}].type: expected message, function_call or function_call_output")
    return messages


def _content(content: Any, i: int) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise SimError(400, f"input[{i}].content: expected a string or an array of parts")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": part.get("image_url")}})
        elif kind == "input_file":
            parts.append(
                {"type": "file", "file": {"filename": part.get("filename"), "file_data": part.get("file_data")}}
            )
        else:
            raise SimError(400, f"input[{i}].content: unknown part type {kind!r}")
    return parts


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise SimError(400, "tools: expected an array")
    converted = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function" and "function" not in tool:
            function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
            converted.append({"type": "function", "function": function})
        else:
            converted.append(tool)
    return converted


def _usage(chat_usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if chat_usage is None:
        return None
    usage = {
        "input_tokens": chat_usage["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": chat_usage["prompt_tokens_details"]["cached_tokens"]},
        "output_tokens": chat_usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": chat_usage["completion_tokens_details"]["reasoning_tokens"]},
        "total_tokens": chat_usage["total_tokens"],
        "cost_details": chat_usage["cost_details"],
        "is_byok": False,
    }
    if "cost" in chat_usage:
        usage["cost"] = chat_usage["cost"]
    return usage


def _citations(annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"type": "url_citation", **{k: a["url_citation"][k] for k in ("url", "title", "start_index", "end_index")}}
        for a in annotations
        if a.get("type") == "url_citation"
    ]


def response_object(
    completion: Completion, body: dict[str, Any], message: dict[str, Any], status: str
) -> dict[str, Any]:
    """The ``response`` object for a finished (or failed) generation, from its chat ``message``."""
    gid = completion.id
    output: list[dict[str, Any]] = []
    if message.get("reasoning"):
        summary = [{"type": "summary_text", "text": message["reasoning"]}]
        output.append({"type": "reasoning", "id": f"rs_{gid}", "summary": summary})
    for call in message.get("tool_calls") or ():
        function = call["function"]
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{call['id']}",
                "call_id": call["id"],
                "name": function["name"],
                "arguments": function["arguments"],
                "status": "completed",
            }
        )
    if message.get("content") or not output:
        text = {
            "type": "output_text",
            "text": message.get("content") or "",
            "annotations": _citations(message.get("annotations") or []),
        }
        output.append(
            {"type": "message", "id": f"msg_{gid}", "role": "assistant", "status": "completed", "content": [text]}
        )
    finish = completion.reply.finish_reason
    return {
        "id": gid,
        "object": "response",
        "created_at": completion.created,
        "model": completion.model.id,
        "provider": completion.provider,
        "status": status,
        "output": output,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" or finish == "length" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice", "auto"),
        "parallel_tool_calls": True,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "usage": None,
    }


async def respond(completion: Completion, body: dict[str, Any]) -> bytes | None:
    """The whole response body (non-streamed), or None when the connection is to be dropped."""
    produced = await completion.generate()
    if produced is None:
        return None
    chat = json.loads(produced) if produced.strip().endswith(b"}") else None
    if chat is None or "error" in chat:
        return produced
    message = chat["choices"][0]["message"]
    status = "incomplete" if chat["choices"][0]["finish_reason"] == "length" else "completed"
    response = response_object(completion, body, message, status)
    response["usage"] = _usage(chat.get("usage"))
    return json.dumps(response).encode()


def _event(kind: str, data: dict[str, Any], sequence: int) -> bytes:
    payload = json.dumps({"type": kind, "sequence_number": sequence, **data}, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode()


async def stream_events(completion: Completion, body: dict[str, Any]) -> AsyncIterator[bytes]:
    """The generation's chat stream retold as Responses events."""
    sequence = 0
    message: dict[str, Any] = {"content": "", "reasoning": "", "tool_calls": [], "annotations": []}
    usage = None
    shell = response_object(completion, body, {"content": "x"}, "in_progress")
    shell["output"] = []
    yield _event("response.created", {"response": shell}, sequence)
    async for raw in completion.events():
        if not raw.startswith(b"data: "):
            yield raw  # keep-alive comments
            continue
        data = raw[6:].strip()
        if data == b"[DONE]":
            break
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            continue
        sequence += 1
        if "error" in chunk:
            failed = response_object(completion, body, message, "failed")
            failed["error"] = {"code": "server_error", "message": chunk["error"].get("message", "")}
            yield _event("response.failed", {"response": failed}, sequence)
            return
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning"):
                message["reasoning"] += delta["reasoning"]
                yield _event(
                    "response.reasoning.delta",
                    {"item_id": f"rs_{completion.id}", "output_index": 0, "delta": delta["reasoning"]},
                    sequence,
                )
            if delta.get("content"):
                message["content"] += delta["content"]
                yield _event(
                    "response.output_text.delta",
                    {
                        "item_id": f"msg_{completion.id}",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": delta["content"],
                    },
                    sequence,
                )
            message["annotations"] += delta.get("annotations") or []
            for call in delta.get("tool_calls") or ():
                if call.get("id"):
                    message["tool_calls"].append(
                        {"id": call["id"], "function": {"name": call["function"]["name"], "arguments": ""}}
                    )
                else:
                    message["tool_calls"][call["index"]]["function"]["arguments"] += call["function"].get(
                        "arguments", ""
                    )
    status = "incomplete" if completion.reply.finish_reason == "length" else "completed"
    final = response_object(completion, body, message, status)
    for index, item in enumerate(final["output"]):
        sequence += 1
        yield _event("response.output_item.done", {"output_index": index, "item": item}, sequence)
    final["usage"] = _usage(usage)
    yield _event("response.completed", {"response": final}, sequence + 1)

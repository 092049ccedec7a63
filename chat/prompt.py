"""A conversation turned into the request of a reply's upstream call: the turns before it (system
prompt, user text and images, earlier replies with their tool steps) and the conversation's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat import conversations, tools, uploads
from chat.models import Attachment, Conversation, Message
from gateway.types import ChatRequest
from orweb.errors import GatewayError


@dataclass
class Context:
    """What a claimed reply's upstream call needs."""

    message: Message
    conversation: Conversation
    user: Any
    history: list[dict[str, Any]]
    has_images: bool
    # The first upstream call, admitted (or refused) ahead of time by `chat.runner.admit_first_call`.
    admission: Any = None
    refused: GatewayError | None = None


def _user_content(message: Message, attachments: dict[int, Attachment]) -> str | list[dict[str, Any]]:
    if not message.attachment_ids:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [
        {"type": "image_url", "image_url": {"url": uploads.data_url(attachments[i])}} for i in message.attachment_ids
    ]
    return parts


def tool_call_turn(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant turn that asked for `calls` (each with id, name, arguments), as the API takes it back."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }


def _assistant_turns(message: Message) -> list[dict[str, Any]]:
    """An earlier reply as the model saw it: its tool steps (call + results), then its text."""
    turns: list[dict[str, Any]] = []
    steps: dict[int, list[dict[str, Any]]] = {}
    for call in message.tool_calls:
        steps.setdefault(call["step"], []).append(call)
    for calls in steps.values():
        turns.append(tool_call_turn(calls))
        turns += [{"role": "tool", "tool_call_id": c["id"], "content": c["result"]} for c in calls]
    if message.content:
        turns.append({"role": "assistant", "content": message.content})
    return turns


def _turns_before(message: Message) -> list[Message]:
    """The messages `message` answers or continues, root first, with their `attachment_ids`: one query."""
    return conversations.path_to(conversations.messages_by_id(message.conversation_id), message.parent_id)


def context(message: Message, conversation: Conversation, user: Any, turns: list[Message] | None = None) -> Context:
    """What the upstream call of `message` needs, for a reply this process has claimed. `turns` are the
    messages before it (root first, with `attachment_ids`), if the caller has just read them; the
    attachments of the user turns are then the only read, and only if there are any."""
    if turns is None:
        turns = _turns_before(message)
    attachment_ids = [i for turn in turns if turn.role == Message.Role.USER for i in turn.attachment_ids]
    attachments = Attachment.objects.in_bulk(attachment_ids) if attachment_ids else {}
    history: list[dict[str, Any]] = []
    if conversation.system_prompt:
        history.append({"role": "system", "content": conversation.system_prompt})
    has_images = False
    for turn in turns:
        if turn.role == Message.Role.USER:
            content = _user_content(turn, attachments)
            has_images = has_images or isinstance(content, list)
            history.append({"role": "user", "content": content})
        elif turn.role == Message.Role.ASSISTANT:
            history += _assistant_turns(turn)
    if message.content:
        history.append({"role": "assistant", "content": message.content})
    return Context(message, conversation, user, history, has_images)


def request(ctx: Context, messages: list[dict[str, Any]]) -> ChatRequest:
    """The upstream request of one step of the reply: `messages` with the conversation's settings."""
    conversation = ctx.conversation
    params: dict[str, Any] = {}
    if conversation.temperature is not None:
        params["temperature"] = float(conversation.temperature)
    if conversation.tools:
        params["tools"] = tools.schemas(conversation.tools)
    return ChatRequest(
        model=conversation.model,
        messages=messages,
        max_tokens=conversation.max_tokens,
        fallback_models=list(conversation.fallback_models),
        params=params,
    )

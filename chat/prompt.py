"""A conversation turned into the request of a reply's upstream call: the turns before it (system
prompt, user text and images, earlier replies with their tool steps) and the conversation's settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat import history, surface, tools, uploads
from chat.history import Window
from chat.models import Attachment, Conversation, Message
from gateway.tokens import IMAGE_ALLOWANCE, PER_MESSAGE_OVERHEAD, count_prompt_tokens, count_tools_tokens
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
    features: surface.Features = surface.Features()
    # The first upstream call, admitted (or refused) ahead of time by `chat.runner.admit_first_call`.
    admission: Any = None
    refused: GatewayError | None = None


def _user_content(message: Message, attachments: dict[int, Attachment] | None) -> str | list[dict[str, Any]]:
    """The user turn's content; without `attachments` (for counting tokens) images have no data."""
    if not message.attachment_ids:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    for i in message.attachment_ids:
        item = attachments[i] if attachments else None
        if item is not None and not item.mime.startswith("image/"):
            parts.append(
                {"type": "file", "file": {"filename": item.name or "file", "file_data": uploads.data_url(item)}}
            )
        else:
            parts.append({"type": "image_url", "image_url": {"url": uploads.data_url(item) if item else ""}})
    return parts


def tool_call_turn(calls: list[dict[str, Any]], reasoning_details: list[Any] | None = None) -> dict[str, Any]:
    """The assistant turn that asked for `calls` (each with id, name, arguments), as the API takes it back,
    with the step's `reasoning_details` unmodified (OpenRouter needs them to carry on a tool loop)."""
    turn: dict[str, Any] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }
    if reasoning_details:
        turn["reasoning_details"] = reasoning_details
    return turn


def _assistant_turns(message: Message) -> list[dict[str, Any]]:
    """An earlier reply as the model saw it: its tool steps (call + results), then its text, each with
    the `reasoning_details` of its step as they came (`Message.reasoning_details`: [{step, details}])."""
    turns: list[dict[str, Any]] = []
    steps: dict[int, list[dict[str, Any]]] = {}
    details = {entry["step"]: entry["details"] for entry in message.reasoning_details}
    for call in message.tool_calls:
        steps.setdefault(call["step"], []).append(call)
    for step, calls in steps.items():
        turns.append(tool_call_turn(calls, details.get(step)))
        turns += [{"role": "tool", "tool_call_id": c["id"], "content": c["result"]} for c in calls]
    last = details.get(max(steps) + 1 if steps else 0)
    # The files OpenRouter parsed for this reply: sent back, they spare the next turn parsing (and paying
    # the OCR fee) again.
    files = [a for a in message.annotations if isinstance(a, dict) and a.get("type") == "file"]
    if message.content or last or files:
        turn: dict[str, Any] = {"role": "assistant", "content": message.content}
        if last:
            turn["reasoning_details"] = last
        if files:
            turn["annotations"] = files
        turns.append(turn)
    return turns


def _turns_of(message: Message) -> list[dict[str, Any]]:
    """The message as the model sees it, images without their data (for counting tokens)."""
    if message.role == Message.Role.USER:
        return [{"role": "user", "content": _user_content(message, None)}]
    if message.role == Message.Role.ASSISTANT:
        return _assistant_turns(message)
    return []


def _reply_room(window: Window, conversation: Conversation) -> int:
    """Tokens kept free for the reply: its max_tokens, or what the gateway would default to within the
    context, capped by the model's output limit (as gateway.policy.max_tokens_for counts them)."""
    context = window.context or history.limit("UNKNOWN_CONTEXT")
    room = conversation.max_tokens or min(settings.OPENROUTER_DEFAULT_MAX_TOKENS, context // 4)
    return min(room, window.max_completion) if window.max_completion else room


def _room(window: Window, conversation: Conversation, reply_so_far: str = "") -> int:
    """Tokens the turns may take: the context less the system prompt, the tools, the reply's text so far
    and room for the reply."""
    fixed: list[dict[str, Any]] = []
    if conversation.system_prompt:
        fixed.append({"role": "system", "content": conversation.system_prompt})
    if reply_so_far:
        fixed.append({"role": "assistant", "content": reply_so_far})
    context = window.context or history.limit("UNKNOWN_CONTEXT")
    taken = count_prompt_tokens(fixed) + count_tools_tokens(tools.schemas(conversation.tools))
    return context - _reply_room(window, conversation) - taken


def _most_tokens(turns: list[dict[str, Any]]) -> int:
    """At least `count_prompt_tokens(turns)`, without tokenizing: a token is at least one byte."""
    images = sum(
        1
        for turn in turns
        if isinstance(turn.get("content"), list)
        for part in turn["content"]
        if part.get("type") == "image_url"
    )
    size = len(json.dumps(turns, ensure_ascii=False).encode())
    return size + images * IMAGE_ALLOWANCE + len(turns) * PER_MESSAGE_OVERHEAD


def refusal(message: Message, window: Window, conversation: Conversation) -> str | None:
    """Why `message` (with `attachment_ids`) can't be sent to the conversation's model even alone, or None."""
    room = _room(window, conversation)
    turns = _turns_of(message)
    if _most_tokens(turns) <= room or (tokens := count_prompt_tokens(turns)) <= room:
        return None
    return (
        f"This message is about {tokens:,} tokens; with the system prompt, the tools and room for the reply, "
        f"{conversation.model} takes at most {max(room, 0):,}. Shorten it, or pick a model with a longer context."
    )


def fit(turns: list[Message], window: Window, conversation: Conversation, reply_so_far: str = "") -> list[Message]:
    """The newest of `turns` (root first) that fit the model's context with everything else the request
    holds (`_room`), starting with a user turn. The last turn is always kept (if it doesn't fit alone, the
    gateway says so). Tokens are counted only when the text's bytes say the turns might not all fit."""
    room = _room(window, conversation, reply_so_far)
    shapes = [_turns_of(m) for m in turns]
    if _most_tokens([t for shape in shapes for t in shape]) <= room:
        return turns
    kept: list[Message] = []
    for message, shape in zip(reversed(turns), reversed(shapes), strict=True):
        tokens = count_prompt_tokens(shape)
        if kept and tokens > room:
            break
        room -= tokens
        kept.append(message)
    while len(kept) > 1 and kept[-1].role != Message.Role.USER:
        kept.pop()
    kept.reverse()
    return kept


def context(message: Message, conversation: Conversation, user: Any, turns: list[Message] | None = None) -> Context:
    """What the upstream call of `message` needs, for a reply this process has claimed. `turns` are the
    messages before it (root first, with `attachment_ids`, already fitted to the model's context), if the
    caller has just read them; the attachments of the user turns are then the only read, and only if there
    are any. Otherwise they are read here, only as far back as the model's context reaches."""
    if turns is None:
        window, branch = history.read_branch(conversation.pk, message.parent_id)
        turns = fit(branch, window, conversation, message.content) if branch else []
    attachment_ids = [i for turn in turns if turn.role == Message.Role.USER for i in turn.attachment_ids]
    attachments = Attachment.objects.in_bulk(attachment_ids) if attachment_ids else {}
    sent: list[dict[str, Any]] = []
    if conversation.system_prompt:
        sent.append({"role": "system", "content": conversation.system_prompt})
    has_images = False
    for turn in turns:
        if turn.role == Message.Role.USER:
            content = _user_content(turn, attachments)
            has_images = has_images or (
                isinstance(content, list) and any(part["type"] == "image_url" for part in content)
            )
            sent.append({"role": "user", "content": content})
        elif turn.role == Message.Role.ASSISTANT:
            sent += _assistant_turns(turn)
    if message.content:
        sent.append({"role": "assistant", "content": message.content})
    return Context(message, conversation, user, sent, has_images, surface.features_of(conversation.model))


def request(ctx: Context, messages: list[dict[str, Any]]) -> ChatRequest:
    """The upstream request of one step of the reply: `messages` with the conversation's settings."""
    conversation = ctx.conversation
    params: dict[str, Any] = surface.params(
        ctx.features, conversation.reasoning, conversation.web_search, conversation.pdf_engine, messages
    )
    if conversation.temperature is not None:
        params["temperature"] = float(conversation.temperature)
    if conversation.tools:
        params["tools"] = tools.schemas(conversation.tools) + params.get("tools", [])
    return ChatRequest(
        model=conversation.model,
        messages=surface.mark_cacheable(messages, ctx.features),
        max_tokens=conversation.max_tokens,
        fallback_models=list(conversation.fallback_models),
        params=params,
    )

"""``POST /chat/completions`` requests: validation the way OpenRouter does it, and model choice.

Choosing walks the ``model`` + ``models`` fallback list: invalid ids, per-model faults, missing
capabilities (tools, images, image output, native files), provider preferences no endpoint meets (``only``,
``max_price``), context length (files included) and credit each fail one candidate, not the request.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openrouter.fees import WEB_SEARCH_TOOL
from openrouter.simulator.errors import SimError
from openrouter.simulator.faults import (
    FaultSpec,
    FaultSpecError,
    context_length_message,
    credits_message,
    fault_error,
)
from openrouter.simulator.files import ParsedFiles, file_parts, parse_files, pdf_engine
from openrouter.simulator.images import wants_images
from openrouter.simulator.routing import check_provider, choose_endpoint
from openrouter.simulator.search import search_options
from openrouter.simulator.state import Endpoint, SimModel, SimState
from openrouter.simulator.textgen import content_text, count_prompt_tokens, reasoning_signature, strip_directives

ROUTING_SUFFIXES = (":nitro", ":floor", ":online")
PLUGINS = ("web", "file-parser", "response-healing", "context-compression")
ROUTER_TARGETS = ("openai/gpt-4o-mini", "anthropic/claude-3.5-haiku", "google/gemini-2.5-flash")
TOOLS_UNSUPPORTED = (
    "No endpoints found that support tool use. To learn more about provider routing, visit: "
    "https://openrouter.ai/docs/provider-routing"
)
IMAGES_UNSUPPORTED = "No endpoints found that support image input"
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_DATA_URL = re.compile(r"data:image/(png|jpeg|jpg|webp|gif);base64,(.+)", re.DOTALL)


@dataclass
class ChatRequest:
    """A validated request: messages have their ``[[sim ...]]`` directives removed."""

    body: dict[str, Any]
    messages: list[dict[str, Any]]
    candidates: list[str]
    stream: bool
    max_tokens: int | None
    spec: FaultSpec
    prompt_tokens: int
    has_images: bool
    provider: dict[str, Any]
    search: dict[str, Any] | None

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The function tools (OpenRouter's own server tools run on its side, not the model's)."""
        return [t for t in self.body.get("tools") or [] if isinstance(t, dict) and t.get("type") != WEB_SEARCH_TOOL]

    @property
    def prompt_text(self) -> str:
        return "\n".join(content_text(m.get("content")) for m in self.messages)


def parse_request(body: Any, header_spec: str | None) -> ChatRequest:
    """Validate the body the way OpenRouter does, naming the problem in a 400."""
    if not isinstance(body, dict):
        raise SimError(400, "Invalid JSON body: expected an object")
    messages = body.get("messages")
    if messages is None and isinstance(body.get("prompt"), str):
        messages = [{"role": "user", "content": body["prompt"]}]
    if not isinstance(messages, list) or not messages:
        raise SimError(400, 'Input required: specify "prompt" or "messages"')
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise SimError(400, f"messages[{i}].role: expected one of {', '.join(sorted(_ROLES))}")
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise SimError(400, "max_tokens: expected a positive integer")
    if not isinstance(body.get("stream", False), bool):
        raise SimError(400, "stream: expected a boolean")
    _check_tools(body.get("tools"))
    _check_plugins(body.get("plugins"))
    file_parts(messages)
    pdf_engine(body)
    provider = check_provider(body.get("provider"))
    candidates = _candidates(body)
    messages, directive_specs = _strip_sim_directives(messages)
    try:
        spec = FaultSpec()
        for raw in [*directive_specs, header_spec or ""]:
            spec = FaultSpec.parse(raw).over(spec)
    except FaultSpecError as exc:
        raise SimError(400, str(exc)) from exc
    return ChatRequest(
        body=body,
        messages=messages,
        candidates=candidates,
        stream=body.get("stream", False),
        max_tokens=max_tokens,
        spec=spec,
        prompt_tokens=count_prompt_tokens(messages),
        has_images=_check_images(messages),
        provider=provider,
        search=search_options(body, _variant(candidates[0])),
    )


def _variant(model_id: str) -> str:
    return next((suffix for suffix in ROUTING_SUFFIXES if model_id.endswith(suffix)), "")


def _check_plugins(plugins: Any) -> None:
    if plugins is None:
        return
    if not isinstance(plugins, list) or not all(isinstance(p, dict) and isinstance(p.get("id"), str) for p in plugins):
        raise SimError(400, "plugins: expected an array of objects with an id")
    for plugin in plugins:
        if plugin["id"] not in PLUGINS:
            raise SimError(400, f"plugins: unknown plugin {plugin['id']!r}")


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SimError(400, f"{name}: expected a number between {low} and {high}, got {value!r}")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise SimError(400, "tools: expected an array")
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("type") == WEB_SEARCH_TOOL:
            continue
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise SimError(400, f"tools[{i}].function.name: required")


def _candidates(body: dict[str, Any]) -> list[str]:
    models = body.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise SimError(400, "models: expected an array of model IDs")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise SimError(400, "model: expected a string")
    candidates = ([model] if model else []) + [m for m in models if m != model]
    if not candidates:
        raise SimError(400, "No models provided")
    return candidates


def _strip_sim_directives(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Remove ``[[sim ...]]`` from the last user message, returning a copy and the specs."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        return messages, []
    message = dict(messages[last_user])
    content = message.get("content")
    specs: list[str] = []
    if isinstance(content, str):
        message["content"], specs = strip_directives(content)
    elif isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                text, found = strip_directives(part["text"])
                specs += found
                part = {**part, "text": text}
            parts.append(part)
        message["content"] = parts
    return [*messages[:last_user], message, *messages[last_user + 1 :]], specs


def _check_images(messages: list[dict[str, Any]]) -> bool:
    """True if any message carries an image; a malformed one is a 400 ``invalid_image``."""
    found = False
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            found = True
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not _valid_image_url(url):
                raise SimError(
                    400,
                    "Invalid image: expected an http(s) URL or a base64 data URL of a png, jpeg, webp or gif",
                    {"error_type": "invalid_image"},
                )
    return found


def _valid_image_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    if url.startswith(("http://", "https://")):
        return True
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return False
    try:
        return bool(base64.b64decode(match.group(2), validate=True))
    except (binascii.Error, ValueError):
        return False


@dataclass
class Candidate:
    """The model that will serve, with its faults, its provider endpoint, its files read, and whether the
    reply carries an image."""

    model: SimModel
    spec: FaultSpec
    endpoint: Endpoint
    files: ParsedFiles
    images: bool


def choose_model(state: SimState, request: ChatRequest) -> Candidate:
    """The first candidate that can serve the request, and the faults that apply to it.

    Request faults with a ``status`` fail the whole request; a candidate's own failure (invalid id,
    per-model fault, missing capability, context, credit) moves on to the next, like OpenRouter's
    ``models`` fallbacks. When all fail, the last error is the answer.
    """
    first = state.models.get(request.candidates[0])
    status = _fault_status(state, request.spec)
    if status is not None:
        raise _fault(request, request.spec, status, first, request.candidates[0])
    error: SimError | None = None
    for model_id in request.candidates:
        state.requests[model_id] += 1
        try:
            return _check_candidate(state, request, model_id)
        except SimError as exc:
            error = exc
    assert error is not None
    raise error


def _check_candidate(state: SimState, request: ChatRequest, model_id: str) -> Candidate:
    model = _resolve(state, model_id)
    if model.is_router:
        model = _route(state, request)
    if model.is_embedding:
        raise SimError(400, f"{model.id} is an embedding model: use /embeddings")
    model_spec = state.faults.get(model.id, FaultSpec())
    status = _fault_status(state, model_spec)
    if status is not None:
        raise _fault(request, model_spec, status, model, model.id)
    if request.tools and "tools" not in model.supported_parameters:
        raise SimError(404, TOOLS_UNSUPPORTED)
    if request.has_images and not model.accepts_images:
        raise SimError(404, IMAGES_UNSUPPORTED)
    images = wants_images(request.body, model)
    endpoint = choose_endpoint(model, request.provider, _variant(model_id))
    files = parse_files(request.messages, request.body, model)
    prompt_tokens = request.prompt_tokens + files.tokens
    if prompt_tokens + (request.max_tokens or 0) > model.context_length:
        raise SimError(
            400,
            context_length_message(model.context_length, prompt_tokens, request.max_tokens or 0),
            {"error_type": "context_length_exceeded"},
        )
    if model.id.startswith("anthropic/"):
        _check_signatures(request.messages)
    _check_credit(state, request, model, endpoint, prompt_tokens)
    return Candidate(model, request.spec.over(model_spec), endpoint, files, images)


def _check_signatures(messages: list[dict[str, Any]]) -> None:
    """Anthropic refuses thinking sent back changed: each signed ``reasoning.text`` must match its text."""
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for detail in message.get("reasoning_details") or ():
            if not isinstance(detail, dict) or detail.get("type") != "reasoning.text" or "signature" not in detail:
                continue
            if detail["signature"] != reasoning_signature(str(detail.get("text") or "")):
                raise SimError(400, "messages: Invalid `signature` in `thinking` block")


def _resolve(state: SimState, model_id: str) -> SimModel:
    model = state.models.get(model_id)
    if model is None and model_id.endswith(ROUTING_SUFFIXES):
        model = state.models.get(model_id.rsplit(":", 1)[0])
    if model is None:
        raise SimError(400, f"{model_id} is not a valid model ID")
    return model


def _route(state: SimState, request: ChatRequest) -> SimModel:
    """A router model serves with a real one that can handle the request."""
    preferred = [state.models[m] for m in ROUTER_TARGETS if m in state.models]
    for model in preferred + list(state.models.values()):
        if model.is_router:
            continue
        if request.tools and "tools" not in model.supported_parameters:
            continue
        if request.has_images and not model.accepts_images:
            continue
        return model
    raise SimError(404, "No endpoints found for openrouter/auto.")


def _fault_status(state: SimState, spec: FaultSpec) -> int | None:
    if spec.fail_first is not None and spec.key is not None:
        state.fail_counts[spec.key] += 1
        return (spec.status or 503) if state.fail_counts[spec.key] <= spec.fail_first else None
    return spec.status


def _fault(request: ChatRequest, spec: FaultSpec, status: int, model: SimModel | None, model_id: str) -> SimError:
    return fault_error(
        status,
        model=model_id,
        provider=model.provider if model else "Unknown",
        prompt=request.prompt_text,
        prompt_tokens=request.prompt_tokens,
        max_tokens=requested_tokens(request, model) if model else request.max_tokens or 0,
        context_length=model.context_length if model else 0,
        retry_after=spec.retry_after,
    )


def requested_tokens(request: ChatRequest, model: SimModel) -> int:
    """What the credit check assumes: ``max_tokens``, else the model's maximum output."""
    if request.max_tokens is not None:
        return request.max_tokens
    return model.max_completion_tokens or max(model.context_length - request.prompt_tokens, 0)


def _check_credit(
    state: SimState, request: ChatRequest, model: SimModel, endpoint: Endpoint, prompt_tokens: int
) -> None:
    remaining = state.remaining_credit()
    if remaining is None:
        return
    wanted = requested_tokens(request, model)
    prompt_cost = prompt_tokens * endpoint.price("prompt") + endpoint.price("request")
    per_token = endpoint.price("completion")
    if prompt_cost + wanted * per_token <= remaining:
        return
    affordable = int(max(remaining - prompt_cost, Decimal(0)) / per_token) if per_token else 0
    raise SimError(402, credits_message(wanted, affordable), {"error_type": "payment_required"})

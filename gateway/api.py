"""The OpenAI-compatible API under /v1: transport only. Bearer auth with a personal key (no cookies, so no
CSRF), the body translated by `gateway.openai_compat`, every call through `gateway.complete` / `.stream`
(their `_with_key` forms for chat completions, which check the key in the same worker-thread hop as
admission).

A client that disconnects mid-stream cancels the request task (Django's ASGI handler does that); the
cancellation runs through `_stream_body`, which leaves the gateway's stream context, so the upstream
request is closed and what was generated is settled as cancelled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway import metered, policy
from gateway.account import key_info
from gateway.keys import aauthenticate
from gateway.models import ApiKey
from gateway.openai_compat import (
    ChunkWriter,
    completion_json,
    error_json,
    error_response_parts,
    parse_body,
    parse_chat_request,
)
from gateway.types import AUTO_MODELS
from openrouter.events import StreamError
from orweb.errors import GatewayError, ServiceUnavailable

AUTO_PRICING = {"prompt": "-1", "completion": "-1"}


def _error(
    status: int, message: str, *, code: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JsonResponse:
    return JsonResponse(error_json(message, status, code=code, param=param), status=status, headers=headers)


def _gateway_error(error: GatewayError) -> JsonResponse:
    status, body, headers = error_response_parts(error)
    return JsonResponse(body, status=status, headers=headers)


def _bearer(request: HttpRequest) -> str | JsonResponse:
    """The secret sent as `Authorization: Bearer <secret>`, not yet checked."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return _error(401, "Missing API key: send 'Authorization: Bearer <your orweb key>'.", code="missing_api_key")
    return secret.strip()


async def _authenticate(request: HttpRequest) -> ApiKey | JsonResponse:
    secret = _bearer(request)
    if isinstance(secret, JsonResponse):
        return secret
    try:
        key = await aauthenticate(secret)
    except DatabaseError:
        return _gateway_error(ServiceUnavailable("The database can't be reached right now; try again soon."))
    if key is None:
        return _error(401, "Invalid or revoked API key.", code="invalid_api_key")
    return key


def _method_not_allowed(request: HttpRequest, allowed: str) -> JsonResponse | None:
    if request.method == allowed:
        return None
    return _error(405, f"Use {allowed} for this endpoint.", code="method_not_allowed", headers={"Allow": allowed})


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    if refused := _method_not_allowed(request, "POST"):
        return refused
    secret = _bearer(request)
    if isinstance(secret, JsonResponse):
        return secret
    try:
        api_request = parse_chat_request(parse_body(request.body))
        if not api_request.stream:
            completion = await metered.complete_with_key(secret, api_request.chat, source="api")
            return JsonResponse(completion_json(completion))
        call = metered.stream_with_key(secret, api_request.chat, source="api")
        writer = ChunkWriter(api_request.chat.model, include_usage=api_request.include_usage)
        body = _stream_body(call, writer)
        await anext(body)
    except GatewayError as error:
        return _gateway_error(error)
    return StreamingHttpResponse(
        body, content_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def _stream_body(call: Any, writer: ChunkWriter) -> AsyncIterator[bytes]:
    """The SSE body. Its first step (run by the view) enters the gateway's stream, so a refusal is still
    an HTTP error. From then on the whole call lives in this generator: however it ends (finished,
    upstream error, the client leaving, or the response dropped unsent, when Python closes the generator)
    leaving `async with` settles it. The last chunk (usage, or the error) goes out after settling, so the
    ledger is written by the time a client has read the whole reply."""
    failure: Exception | None = None
    async with call:
        yield b""
        try:
            async for event in call:
                if isinstance(event, StreamError):
                    failure = event.error
                    break
                if chunk := writer.event(event):
                    yield chunk
        except GatewayError as error:
            failure = error
    yield writer.end(call.result) if failure is None else writer.error(failure)


@csrf_exempt
async def models(request: HttpRequest) -> HttpResponse:
    """The models this key's user may call, in OpenAI's list shape plus OpenRouter's pricing and context."""
    if refused := _method_not_allowed(request, "GET"):
        return refused
    key = await _authenticate(request)
    if isinstance(key, JsonResponse):
        return key
    entries = [
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
    for model in await sync_to_async(_allowed_models)(key.user):
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
                "supported_parameters": model.supported_parameters,
            }
        )
    return JsonResponse({"object": "list", "data": entries})


def _allowed_models(user: Any) -> list[Any]:
    return list(policy.allowed_models(user))


def _price(value: Any) -> str:
    return "-1" if value is None else format(value.normalize(), "f")


@csrf_exempt
async def key(request: HttpRequest) -> HttpResponse:
    """OpenRouter's `GET /key` for the key's user, so tools written for OpenRouter can read the budget."""
    if refused := _method_not_allowed(request, "GET"):
        return refused
    api_key = await _authenticate(request)
    if isinstance(api_key, JsonResponse):
        return api_key
    info = await sync_to_async(key_info)(api_key.user, f"{api_key.name} ({api_key.prefix}…)")
    return JsonResponse(info)

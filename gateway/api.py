"""The OpenAI-compatible API under /v1: transport only. Bearer auth with a personal key (no cookies, so no
CSRF); the body checked by `gateway.api_requests`, every call through `gateway.metered` (its `_with_key`
forms for chat completions, which check the key in the same database hop as admission), the answer shaped
by `gateway.api_responses` and, when streamed, `gateway.sse_writer`.

A client that disconnects mid-stream cancels the request task (Django's ASGI handler does that); the
cancellation runs through `_stream_body`, which leaves the metered stream's context, so the upstream
request is closed and what was generated is settled as cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from billing.reports import key_info
from catalog.models import CatalogModel
from gateway import fail_closed, metered, policy
from gateway.api_requests import ApiRequest, parse_body, parse_chat_request
from gateway.api_responses import completion_json, error_json, error_response_parts, models_json
from gateway.embeddings import parse_embeddings_request
from gateway.keys import MISSING_KEY, authenticate, bearer_secret
from gateway.metered import MeteredStream
from gateway.models import ApiKey
from gateway.responses_api import ResponsesWriter, parse_responses_request, settled_response
from gateway.sse_writer import ChunkWriter
from gateway.types import Completion
from openrouter.events import StreamError
from orweb import aio, body_limits
from orweb.errors import GatewayError, ServiceUnavailable


def _error(
    status: int, message: str, *, code: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JsonResponse:
    return JsonResponse(error_json(message, status, code=code, param=param), status=status, headers=headers)


def _gateway_error(error: GatewayError) -> JsonResponse:
    status, body, headers = error_response_parts(error)
    return JsonResponse(body, status=status, headers=headers)


def _allowed_models(user: Any) -> list[CatalogModel]:
    return list(policy.allowed_models(user))


# Each borrows a connection and hands it back when it returns: Django would close it only when the
# response ends, and a streaming reply would keep it for the whole stream.
_authenticate_off_loop = fail_closed.db(authenticate)
_allowed_models_off_loop = aio.db(_allowed_models)
_key_info_off_loop = aio.db(key_info)


def _bearer(request: HttpRequest) -> str | JsonResponse:
    """The secret sent as `Authorization: Bearer <secret>`, not yet checked."""
    secret = bearer_secret(request.headers)
    if secret is None:
        return _error(401, MISSING_KEY, code="missing_api_key")
    return secret


async def _authenticate(request: HttpRequest) -> ApiKey | JsonResponse:
    secret = _bearer(request)
    if isinstance(secret, JsonResponse):
        return secret
    try:
        key = await _authenticate_off_loop(secret)
    except GatewayError as error:
        return _gateway_error(error)
    except DatabaseError:
        # Whatever else the database says about a key read (say, bytes it can't store), nothing is spent.
        return _gateway_error(ServiceUnavailable("The database can't be reached right now; try again soon."))
    if key is None:
        return _error(401, "Invalid or revoked API key.", code="invalid_api_key")
    return key


BIG_BODY = 256 * 1024
T = TypeVar("T")


def _method_not_allowed(request: HttpRequest, allowed: str) -> JsonResponse | None:
    if request.method == allowed:
        return None
    return _error(405, f"Use {allowed} for this endpoint.", code="method_not_allowed", headers={"Allow": allowed})


async def _read_body(request: HttpRequest, secret: str, parse: Callable[[dict[str, Any]], T]) -> T | JsonResponse:
    """The request body parsed by `parse` (a 413 or the 400 it raised as a response). A big body costs real
    CPU to parse (about 0.14 s a megabyte): only for a caller with a valid key, and off the event loop, so one
    hostile request can't stall everyone's streams."""
    try:
        raw = request.body
    except RequestDataTooBig:
        # Under `orweb.serve` the server refuses such a body before reading it; this is the same answer
        # under any other server (and Django's test client), where Django's cap is the first to see it.
        message = body_limits.too_large_message(body_limits.limit_for(request.path_info))
        return _error(413, message, code="request_too_large")

    def parsed() -> T | GatewayError:
        try:
            return parse(parse_body(raw))
        except GatewayError as error:
            return error

    if len(raw) > BIG_BODY:
        if isinstance(key := await _authenticate(request), JsonResponse):
            return key
        result = await asyncio.to_thread(parsed)
    else:
        result = parsed()
    return _gateway_error(result) if isinstance(result, GatewayError) else result


async def _posted(request: HttpRequest, parse: Callable[[dict[str, Any]], T]) -> tuple[str, T] | JsonResponse:
    """The caller's key and its request parsed by `parse`, or the response refusing them: not a POST, no
    key, a body too large or malformed."""
    if refused := _method_not_allowed(request, "POST"):
        return refused
    secret = _bearer(request)
    if isinstance(secret, JsonResponse):
        return secret
    parsed = await _read_body(request, secret, parse)
    return parsed if isinstance(parsed, JsonResponse) else (secret, parsed)


def _asks_response_cache(request: HttpRequest) -> bool:
    """The caller's `X-OpenRouter-Cache: true`, passed on to OpenRouter's response cache (a hit costs $0)."""
    return request.headers.get("X-OpenRouter-Cache", "").strip().lower() == "true"


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    if isinstance(posted := await _posted(request, parse_chat_request), JsonResponse):
        return posted
    secret, api_request = posted
    api_request.chat.response_cache = _asks_response_cache(request)
    writer = ChunkWriter(api_request.chat.model, include_usage=api_request.include_usage)
    return await _answer(secret, api_request, completion_json, writer)


@csrf_exempt
async def embeddings(request: HttpRequest) -> HttpResponse:
    """OpenAI's `/v1/embeddings` through the metered path; OpenRouter's answer with the settled cost."""
    if isinstance(posted := await _posted(request, parse_embeddings_request), JsonResponse):
        return posted
    secret, chat = posted
    chat.response_cache = _asks_response_cache(request)
    try:
        completion = await metered.complete_with_key(secret, chat, source="api")
    except GatewayError as error:
        return _gateway_error(error)
    return JsonResponse(settled_response(completion.raw, completion.result))


@csrf_exempt
async def responses(request: HttpRequest) -> HttpResponse:
    """OpenRouter's stateless `/v1/responses` (beta) through the metered path, streamed or not."""
    if isinstance(posted := await _posted(request, parse_responses_request), JsonResponse):
        return posted
    secret, api_request = posted
    api_request.chat.response_cache = _asks_response_cache(request)

    def settled(completion: Completion) -> dict[str, Any]:
        return settled_response(completion.raw, completion.result)

    return await _answer(secret, api_request, settled, ResponsesWriter(api_request.chat.model))


async def _answer(
    secret: str,
    api_request: ApiRequest,
    render: Callable[[Completion], dict[str, Any]],
    writer: ChunkWriter | ResponsesWriter,
) -> HttpResponse:
    """One metered call answered as JSON, or as server-sent events through `writer` when it streams."""
    try:
        if not api_request.stream:
            completion = await metered.complete_with_key(secret, api_request.chat, source="api")
            return JsonResponse(render(completion))
        body = _stream_body(metered.stream_with_key(secret, api_request.chat, source="api"), writer)
        await anext(body)
    except GatewayError as error:
        return _gateway_error(error)
    return StreamingHttpResponse(body, content_type="text/event-stream", headers=_SSE_HEADERS)


async def _stream_body(call: MeteredStream, writer: ChunkWriter | ResponsesWriter) -> AsyncIterator[bytes]:
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
    return JsonResponse(models_json(await _allowed_models_off_loop(key.user)))


@csrf_exempt
async def key(request: HttpRequest) -> HttpResponse:
    """OpenRouter's `GET /key` for the key's user, so tools written for OpenRouter can read the budget."""
    if refused := _method_not_allowed(request, "GET"):
        return refused
    api_key = await _authenticate(request)
    if isinstance(api_key, JsonResponse):
        return api_key
    info = await _key_info_off_loop(api_key.user, f"{api_key.name} ({api_key.prefix}…)")
    return JsonResponse(info)

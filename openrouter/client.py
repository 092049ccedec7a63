"""The async OpenRouter client: every request orweb makes to OpenRouter goes through `OpenRouterClient`.

It adds what each call needs and callers shouldn't have to remember: the attribution headers, a
`max_tokens` on every completion, retries of transient failures, a client-side fallback across models,
exact (Decimal) money, a content-idle timeout for streams, and an API key that never shows up in an
error or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import httpx

from openrouter.errors import (
    ConnectionFailed,
    IncompleteStream,
    InvalidResponse,
    NotFound,
    OpenRouterError,
    Overloaded,
    RateLimited,
    RequestTimeout,
    UpstreamError,
    error_from_payload,
    error_from_response,
)
from openrouter.event_stream import GENERATION_HEADER, Attempts, EventStream
from openrouter.events import Usage, usage_from_json
from openrouter.network import AsyncioTransport
from openrouter.responses_stream import ResponsesDecoder, responses_usage
from openrouter.retry import RetryPolicy
from openrouter.sse import ChunkDecoder, image_urls, json_decoder

logger = logging.getLogger(__name__)

T = TypeVar("T")

Observer = Callable[[str, str], None]
"""Told (generation id, model) the moment a try's response headers name its generation, before any content:
every try that got that far may be billed, retried ones too, so the metered path records each at once."""

# Errors another model might not have: no endpoint, a down or overloaded provider, a rate limit.
_FALLBACK_ERRORS = (NotFound, UpstreamError, Overloaded, RateLimited, RequestTimeout, IncompleteStream)


@dataclass(slots=True)
class ChatResult:
    """A finished non-streaming completion; `model` is the model that answered."""

    generation_id: str
    model: str
    provider: str | None
    content: str
    reasoning: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str | None
    native_finish_reason: str | None
    usage: Usage | None
    raw: dict[str, Any]
    attempts: Attempts = field(default_factory=list)
    reasoning_details: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


_JSON_HEADERS = {"Content-Type": "application/json"}
_STREAM_HEADERS = {**_JSON_HEADERS, "Accept": "text/event-stream", "Cache-Control": "no-store"}
# OpenRouter's response cache (beta) answers an identical earlier request again at no cost, when asked.
_CACHE_HEADERS = {"X-OpenRouter-Cache": "true"}


def _json_headers(response_cache: bool) -> dict[str, str]:
    return {**_JSON_HEADERS, **_CACHE_HEADERS} if response_cache else _JSON_HEADERS


def _stream_headers(response_cache: bool) -> dict[str, str]:
    return {**_STREAM_HEADERS, **_CACHE_HEADERS} if response_cache else _STREAM_HEADERS


class OpenRouterClient:
    """One shared connection pool to OpenRouter; safe to use from many tasks at once."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://openrouter.ai/api/v1",
        *,
        app_url: str | None = None,
        app_title: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 10,
        idle_timeout: float = 60,
        answer_timeout: float = 600,
        default_max_tokens: int = 1024,
        retry: RetryPolicy | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        if app_url:
            headers["HTTP-Referer"] = app_url
        if app_title:
            headers["X-Title"] = app_title
            headers["X-OpenRouter-Title"] = app_title
        self._api_key = api_key
        self._idle_timeout = idle_timeout
        self._answer_timeout = answer_timeout
        self._default_max_tokens = default_max_tokens
        self._retry = retry or RetryPolicy()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            transport=transport or AsyncioTransport(limits),
            timeout=httpx.Timeout(idle_timeout, connect=connect_timeout),
            limits=limits,
        )

    def __repr__(self) -> str:
        return f"OpenRouterClient(base_url={str(self._http.base_url)!r})"

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self,
        body: dict[str, Any],
        *,
        fallback_models: Sequence[str] = (),
        observe: Observer | None = None,
        response_cache: bool = False,
    ) -> ChatResult:
        """A non-streaming completion, retried and then tried on each of `fallback_models` in turn.
        `response_cache` asks OpenRouter's response cache (an identical earlier answer, at no cost)."""
        attempts: Attempts = []
        headers = _json_headers(response_cache)
        result = await self._with_fallback(
            self._completion_body(body, stream=False),
            fallback_models,
            lambda attempt_body: self._chat_once(attempt_body, observe, headers),
            attempts,
        )
        result.attempts = attempts
        return result

    @asynccontextmanager
    async def stream(
        self,
        body: dict[str, Any],
        *,
        fallback_models: Sequence[str] = (),
        observe: Observer | None = None,
        response_cache: bool = False,
    ) -> AsyncIterator[EventStream]:
        """A streamed completion: `async with client.stream(body) as events: async for ev in events`.

        Until the first chunk arrives, failures are retried and fall back like `chat`, and the last one
        is raised from `async with`. After that, nothing is raised: a failure is the final event,
        a StreamError. Leaving the block closes the connection at once, even mid-stream.
        """
        attempts: Attempts = []
        headers = _stream_headers(response_cache)
        events = await self._with_fallback(
            self._completion_body(body, stream=True),
            fallback_models,
            lambda attempt_body: self._open_stream(attempt_body, attempts, observe, headers=headers),
            attempts,
        )
        try:
            yield events
        finally:
            await events.aclose()

    async def embeddings(
        self, body: dict[str, Any], *, observe: Observer | None = None, response_cache: bool = False
    ) -> BilledResult:
        """`POST /embeddings`, retried; the vectors stay in `raw`."""
        attempts: Attempts = []
        model, sent = body["model"], _json_headers(response_cache)
        payload, headers = await self._retrying(
            lambda: self._post_once("embeddings", body, observe, sent), model, attempts
        )
        return _billed_result(payload, headers, model, attempts, usage_from_json)

    async def responses(
        self, body: dict[str, Any], *, observe: Observer | None = None, response_cache: bool = False
    ) -> BilledResult:
        """`POST /responses` (stateless, not streamed), retried; the response object stays in `raw`."""
        attempts: Attempts = []
        model, sent = body["model"], _json_headers(response_cache)
        body = {**body, "stream": False}
        payload, headers = await self._retrying(
            lambda: self._post_once("responses", body, observe, sent), model, attempts
        )
        if isinstance(payload, dict) and payload.get("status") == "failed":
            raise error_from_payload(payload.get("error") or "The response failed")
        return _billed_result(payload, headers, model, attempts, responses_usage)

    @asynccontextmanager
    async def stream_responses(
        self, body: dict[str, Any], *, observe: Observer | None = None, response_cache: bool = False
    ) -> AsyncIterator[EventStream]:
        """`POST /responses` streamed, as the same events as a chat stream (`ResponsesDecoder`); like `stream`,
        failures before the first event are retried and raised, later ones are the last event."""
        attempts: Attempts = []
        model = body["model"]
        opening = partial(
            self._open_stream,
            {**body, "stream": True},
            attempts,
            observe,
            "responses",
            ResponsesDecoder,
            _stream_headers(response_cache),
        )
        events = await self._retrying(opening, model, attempts)
        try:
            yield events
        finally:
            await events.aclose()

    async def models(self, *, output_modalities: str | None = None) -> list[dict[str, Any]]:
        """The model catalog (`data` of GET /models): text-output models, or with `output_modalities="all"`
        every model, embedding models included."""
        query = {"output_modalities": output_modalities} if output_modalities else None
        return _data(await self._retrying(lambda: self._get("models", query), "", []), list)

    async def generation(self, generation_id: str) -> dict[str, Any]:
        """The billed record of one generation; NotFound for a while after it ends, so retry later."""
        payload = await self._retrying(lambda: self._get("generation", {"id": generation_id}), "", [])
        return _data(payload, dict)

    async def key(self) -> dict[str, Any]:
        """Limit and usage of the server key (`data` of GET /key)."""
        return _data(await self._retrying(lambda: self._get("key"), "", []), dict)

    def _completion_body(self, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        body = {**body, "stream": stream}
        if body.get("max_tokens") is None:
            body["max_tokens"] = body.pop("max_completion_tokens", None) or self._default_max_tokens
        return body

    async def _with_fallback(
        self,
        body: dict[str, Any],
        fallback_models: Sequence[str],
        call: Callable[[dict[str, Any]], Awaitable[T]],
        attempts: Attempts,
    ) -> T:
        *earlier, last = [body["model"], *fallback_models]
        try:
            for model in earlier:
                try:
                    return await self._retrying(partial(call, {**body, "model": model}), model, attempts)
                except _FALLBACK_ERRORS as error:
                    logger.warning("Falling back from %s after %r", model, error)
            return await self._retrying(partial(call, {**body, "model": last}), last, attempts)
        except OpenRouterError as error:
            error.attempts = attempts
            raise

    async def _retrying(self, call: Callable[[], Awaitable[T]], model: str, attempts: Attempts) -> T:
        async for attempt in self._retry.attempts():
            with attempt:
                try:
                    return await call()
                except OpenRouterError as error:
                    attempts.append((model, error.redact(self._api_key)))
                    raise
        raise AssertionError("stamina either returns or raises")

    async def _chat_once(
        self, body: dict[str, Any], observe: Observer | None, headers: dict[str, str] = _JSON_HEADERS
    ) -> ChatResult:
        """One try of a chat completion (see `_post_once`)."""
        payload, headers = await self._post_once("chat/completions", body, observe, headers)
        try:
            return _chat_result(payload, headers, body["model"])
        except (AttributeError, TypeError, IndexError) as exc:
            raise InvalidResponse(f"The completion has an unexpected shape ({exc})") from exc

    async def _post_once(
        self, path: str, body: dict[str, Any], observe: Observer | None, headers: dict[str, str] = _JSON_HEADERS
    ) -> tuple[Any, httpx.Headers]:
        """One try of a billed JSON call. The headers are read first (OpenRouter sends them at once, then
        whitespace while the model works), so the generation is known even when the body never comes. The
        whitespace keeps every read alive, so the whole answer has a deadline of its own (`answer_timeout`)."""
        request = self._http.build_request("POST", path, content=_encode(body), headers=headers)
        response = await self._headers(request, observe, body["model"])
        try:
            try:
                async with asyncio.timeout(self._answer_timeout):
                    content = await self._transport_call(response.aread())
            except TimeoutError as exc:
                raise RequestTimeout(f"No answer within {self._answer_timeout:g} seconds") from exc
        finally:
            await response.aclose()
        if response.status_code >= 400:
            raise error_from_response(response.status_code, content, response.headers)
        return _parse(content, response.headers), response.headers

    async def _open_stream(
        self,
        body: dict[str, Any],
        attempts: Attempts,
        observe: Observer | None,
        path: str = "chat/completions",
        decoder: type[ChunkDecoder] | type[ResponsesDecoder] = ChunkDecoder,
        headers: dict[str, str] = _STREAM_HEADERS,
    ) -> EventStream:
        request = self._http.build_request("POST", path, content=_encode(body), headers=headers)
        response = await self._headers(request, observe, body["model"])
        try:
            if response.status_code >= 400:
                raise error_from_response(response.status_code, await response.aread(), response.headers)
            if "text/event-stream" not in response.headers.get("content-type", ""):
                _parse(await response.aread(), response.headers)
                raise InvalidResponse("Expected an event stream, got a JSON body")
        except BaseException:
            await response.aclose()
            raise
        events = EventStream(response, body["model"], self._idle_timeout, self._api_key, attempts, decoder)
        try:
            await events._read_first()
        except BaseException:
            await events.aclose()
            raise
        if observe is not None and events.generation_id and events.generation_id != response.headers.get(_GEN):
            observe(events.generation_id, events.model)  # no header, or the first chunk names another id
        return events

    async def _headers(self, request: httpx.Request, observe: Observer | None, model: str) -> httpx.Response:
        """Send a completion request and wait for its response headers, telling `observe` its generation.

        A caller cancelled while the request is out doesn't stop a generation upstream may have started
        (and will bill): its headers are still awaited for up to HEADER_GRACE seconds, so its id is known,
        before the cancellation goes on."""
        sending = asyncio.ensure_future(self._transport_call(self._http.send(request, stream=True)))
        try:
            response = await asyncio.shield(sending)
        except asyncio.CancelledError:
            await self._observe_late(sending, observe, model)
            raise
        _observe(observe, response, model)
        return response

    async def _observe_late(self, sending: asyncio.Future, observe: Observer | None, model: str) -> None:
        try:
            async with asyncio.timeout(HEADER_GRACE):
                response = await asyncio.shield(sending)
        except (TimeoutError, OpenRouterError):
            sending.cancel()
            return
        except asyncio.CancelledError:
            sending.cancel()
            raise
        _observe(observe, response, model)
        await response.aclose()

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        response = await self._transport_call(self._http.get(path, params=params))
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content, response.headers)
        return _parse(response.content, response.headers)

    async def _transport_call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"OpenRouter did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"Could not reach OpenRouter: {exc or type(exc).__name__}") from exc


_GEN = GENERATION_HEADER
HEADER_GRACE = 5.0


def _observe(observe: Observer | None, response: httpx.Response, model: str) -> None:
    generation_id = response.headers.get(_GEN)
    if observe is not None and generation_id:
        observe(generation_id, model)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _parse(content: bytes, headers: httpx.Headers) -> Any:
    """A successful JSON body, with an `error` inside it (OpenRouter does that) raised as such."""
    try:
        payload = json_decoder.decode(content.decode())
    except ValueError as exc:
        raise InvalidResponse(f"OpenRouter sent a body that is not JSON: {content[:200]!r}") from exc
    if isinstance(payload, dict) and payload.get("error"):
        raise error_from_payload(payload["error"], headers=headers)
    return payload


def _data(payload: Any, kind: type) -> Any:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, kind):
        raise InvalidResponse(f"Expected a `data` {kind.__name__} in the response")
    return data


def _chat_result(payload: Any, headers: httpx.Headers, model: str) -> ChatResult:
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise InvalidResponse("The completion has no choices")
    choice = choices[0]
    if choice.get("error") or choice.get("finish_reason") == "error":
        raise error_from_payload(choice.get("error") or "The provider ended the completion with an error")
    message = choice.get("message") or {}
    return ChatResult(
        generation_id=payload.get("id") or headers.get("x-generation-id") or "",
        model=payload.get("model") or model,
        provider=payload.get("provider"),
        content=message.get("content") or "",
        reasoning=message.get("reasoning"),
        tool_calls=message.get("tool_calls") or [],
        finish_reason=choice.get("finish_reason"),
        native_finish_reason=choice.get("native_finish_reason"),
        usage=usage_from_json(payload["usage"]) if payload.get("usage") else None,
        raw=payload,
        reasoning_details=_dicts(message.get("reasoning_details")),
        annotations=_dicts(message.get("annotations")),
        images=image_urls(message.get("images")),
    )


@dataclass(slots=True)
class BilledResult:
    """A finished billed call other than a chat completion (embeddings, a response): who served, the usage,
    and the body as it came."""

    generation_id: str
    model: str
    provider: str | None
    usage: Usage | None
    raw: dict[str, Any]
    attempts: Attempts = field(default_factory=list)


def _billed_result(
    payload: Any, headers: httpx.Headers, model: str, attempts: Attempts, usage: Callable[[dict[str, Any]], Usage]
) -> BilledResult:
    if not isinstance(payload, dict):
        raise InvalidResponse("Expected a JSON object")
    return BilledResult(
        generation_id=headers.get(_GEN) or payload.get("id") or "",
        model=payload.get("model") or model,
        provider=payload.get("provider"),
        usage=usage(payload["usage"]) if isinstance(payload.get("usage"), dict) else None,
        raw=payload,
        attempts=attempts,
    )


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

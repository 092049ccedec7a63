"""The metered path: every model call goes through `complete` or `stream`, in this order:
policy -> rate limit -> budget hold -> call (retries, fallback chain) -> settle.

Admission (policy, rate limit, hold) and settlement are plain synchronous functions run in a worker
thread, each one short database transaction; the upstream call runs on the event loop in between.
If the database or Redis can't be reached, a call is refused with ServiceUnavailable: nothing is
spent that can't be metered.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, close_old_connections

from billing import ratelimit
from billing.budgets import remaining_for
from billing.holds import place_hold
from billing.ledger import Outcome, settle
from billing.models import LedgerEntry
from billing.pricing import estimate, worst_case
from billing.ratelimit import limits_from, release_stream_slot
from catalog.models import CatalogModel
from gateway import auto
from gateway import context as call_context
from gateway.context import CallContext
from gateway.policy import (
    Shape,
    check_allowed,
    check_fits,
    check_model_allowed,
    max_tokens_for,
    misfit,
    shape_of,
)
from gateway.tokens import count_text_tokens
from gateway.types import AUTO_MODELS, CallResult, ChatRequest, Completion
from openrouter import (
    AuthenticationError,
    BadRequest,
    IdleTimeout,
    IncompleteStream,
    InsufficientCredits,
    ModerationError,
    NotFound,
    OpenRouterError,
    Overloaded,
    RateLimited,
    RequestTimeout,
)
from openrouter.events import Finish, ReasoningDelta, StreamError, TextDelta, ToolCallDelta, Usage
from orweb.errors import GatewayError, InvalidApiKey, ServiceUnavailable, UpstreamFailed
from orweb.upstream import get_client, openrouter_user_id

logger = logging.getLogger(__name__)
call_log = logging.getLogger("orweb.calls")

T = TypeVar("T")

# Fields a caller may not set: they would change where the request goes, who pays, or how it's read.
_STRIPPED_PARAMS = frozenset(
    {
        "model",
        "models",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stream",
        "stream_options",
        "user",
        "route",
        "transforms",
        "base_url",
        "api_key",
        "usage",
    }
)
# Provider routing that stays within the chosen model and its budget hold.
_PROVIDER_KEYS = frozenset(
    {
        "order",
        "allow_fallbacks",
        "require_parameters",
        "data_collection",
        "zdr",
        "only",
        "ignore",
        "quantizations",
        "sort",
        "max_price",
    }
)


@dataclass
class Admission:
    """A call let through: where it goes, with which body, and the hold that covers it."""

    user_id: int
    source: str
    api_key_id: int | None
    requested_model: str
    chosen_model: str | None
    chain: list[CatalogModel]
    shape: Shape
    max_tokens: int
    body: dict[str, Any]
    hold_id: Any
    slot: str | None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def model(self, model_id: str | None) -> CatalogModel | None:
        return next((m for m in self.chain if m.pk == model_id), self.chain[0])


@contextmanager
def _database_reachable() -> Iterator[None]:
    """Fail closed: a database error becomes ServiceUnavailable, nothing is called that can't be metered."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise ServiceUnavailable("The database can't be reached right now; try again soon.") from exc


def _in_thread(function: Callable[..., T]) -> Callable[..., Any]:
    """Run a database function in a worker thread, with Django's connection housekeeping around it."""

    def run(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        try:
            with _database_reachable():
                return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


def clean_params(params: dict[str, Any]) -> dict[str, Any]:
    """The pass-through fields, minus those that would reroute the call or change who pays."""
    cleaned = {k: v for k, v in params.items() if k not in _STRIPPED_PARAMS}
    provider = cleaned.pop("provider", None)
    if isinstance(provider, dict):
        kept = {k: v for k, v in provider.items() if k in _PROVIDER_KEYS}
        if kept:
            cleaned["provider"] = kept
    plugins = cleaned.pop("plugins", None)
    if isinstance(plugins, list):
        # Web search is billed per search, outside the hold's worst case.
        kept_plugins = [p for p in plugins if isinstance(p, dict) and p.get("id") != "web"]
        if kept_plugins:
            cleaned["plugins"] = kept_plugins
    return cleaned


def _requested_max_tokens(request: ChatRequest) -> Any:
    if request.max_tokens is not None:
        return request.max_tokens
    return request.params.get("max_completion_tokens", request.params.get("max_tokens"))


def _is_auto(model_id: str) -> bool:
    return model_id in AUTO_MODELS or model_id.startswith("orweb/auto:")


def _pick_model(
    user: Any, request: ChatRequest, shape: Shape, context: CallContext | None = None
) -> tuple[CatalogModel, str | None]:
    if _is_auto(request.model):
        return auto.choose(user, request.model, shape, remaining_for(user)), request.model
    if context is None:
        model = check_allowed(user, request.model)
    else:
        model = check_model_allowed(user, request.model, context.models.get(request.model), context.policies)
    check_fits(model, shape)
    return model, None


def _fallbacks(user: Any, request: ChatRequest, shape: Shape, max_tokens: int, primary: str, context: CallContext):
    """The allowed fallback models that take this request as is; the others with why they were skipped."""
    chain: list[CatalogModel] = []
    skipped: list[tuple[str, str]] = []
    exact = Shape(shape.prompt_tokens, max_tokens, shape.images, shape.uses_tools)
    for model_id in dict.fromkeys(request.fallback_models):
        if model_id == primary:
            continue
        try:
            model = check_model_allowed(user, model_id, context.models.get(model_id), context.policies)
        except GatewayError as error:
            skipped.append((model_id, error.message))
            continue
        problem = misfit(model, exact)
        if problem is None and max_tokens_for(model, exact) < max_tokens:
            problem = GatewayError(f"max_tokens {max_tokens} is above the limit of {model_id!r}")
        if problem is not None:
            skipped.append((model_id, problem.message))
            continue
        chain.append(model)
    return chain, skipped


def _model_ids(request: ChatRequest) -> list[str]:
    return [model_id for model_id in (request.model, *request.fallback_models) if isinstance(model_id, str)]


def admit(user: Any, request: ChatRequest, *, source: str, api_key: Any = None, slot: str | None = None) -> Admission:
    """Policy, then rate limit, then budget hold; raises a GatewayError before anything is spent."""
    context = call_context.for_user(user, _model_ids(request))
    return _admit_in(context, request, source=source, api_key=api_key, slot=slot)


def admit_stream(user: Any, request: ChatRequest, *, source: str) -> Admission:
    """`admit` for a stream opened later with `stream(..., admission=...)`, by a caller already in a
    database thread: the chat send step admits a reply in the same hop that stores its messages, so the
    upstream call starts without another. Whoever gets an Admission must open it or `abandon` it."""
    with _database_reachable():
        return admit(user, request, source=source, slot=uuid.uuid4().hex)


def admit_key(secret: str, request: ChatRequest, *, source: str, slot: str | None = None) -> Admission:
    """`admit` for a call made with a personal API key, read in the same statement as what admission
    checks (InvalidApiKey when the key is unknown or revoked): one thread hop and one round trip."""
    context = call_context.for_key(secret, _model_ids(request))
    if context is None:
        raise InvalidApiKey("Invalid or revoked API key.")
    return _admit_in(context, request, source=source, api_key=context.api_key, slot=slot)


def _admit_in(context: CallContext, request: ChatRequest, *, source: str, api_key: Any, slot: str | None) -> Admission:
    user = context.user
    try:
        shape = shape_of(request.messages, _requested_max_tokens(request), request.params)
        model, auto_mode = _pick_model(user, request, shape, context)
        max_tokens = max_tokens_for(model, shape)
        fallbacks, skipped = _fallbacks(user, request, shape, max_tokens, model.pk, context)
        chain = [model, *fallbacks]
        limits = limits_from(context.rate_limits)
        ratelimit.take(user.pk, limits, shape.prompt_tokens + max_tokens, slot)
        try:
            amount = max(worst_case(m, shape.prompt_tokens, max_tokens, shape.images) for m in chain)
            hold = place_hold(user, amount)
        except BaseException:
            if slot is not None:
                release_stream_slot(user.pk, slot)
            raise
    except GatewayError as error:
        _log_refusal(user.pk, source, request.model, error)
        raise
    body = {
        **clean_params(request.params),
        "model": model.pk,
        "messages": request.messages,
        "max_tokens": max_tokens,
        "user": openrouter_user_id(user.pk),
    }
    return Admission(
        user_id=user.pk,
        source=source,
        api_key_id=getattr(api_key, "pk", api_key),
        requested_model=request.model,
        chosen_model=model.pk if auto_mode else None,
        chain=chain,
        shape=shape,
        max_tokens=max_tokens,
        body=body,
        hold_id=hold.pk if hold else None,
        slot=slot,
        skipped=skipped,
    )


def finish(admission: Admission, outcome: Outcome) -> CallResult:
    """Settle the call and write its log line; give back its stream slot."""
    try:
        entry = settle(outcome, hold_id=admission.hold_id)
    finally:
        if admission.slot is not None:
            release_stream_slot(admission.user_id, admission.slot)
    result = CallResult(
        ledger_id=entry.pk,
        status=entry.status,
        requested_model=entry.requested_model,
        served_model=entry.served_model,
        provider=entry.provider,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
        cost=entry.cost,
        cost_source=entry.cost_source,
        ttft_ms=entry.ttft_ms,
        latency_ms=entry.latency_ms,
        generation_id=entry.generation_id,
        error=entry.error or None,
        skipped=list(admission.skipped),
    )
    _log_call(admission, result)
    return result


def _log_call(admission: Admission, result: CallResult) -> None:
    call_log.info(
        "call user=%s source=%s requested=%s served=%s status=%s ttft_ms=%s latency_ms=%s "
        "prompt_tokens=%s completion_tokens=%s cost=%s cost_source=%s generation=%s",
        admission.user_id,
        admission.source,
        admission.requested_model,
        result.served_model or "-",
        result.status,
        result.ttft_ms if result.ttft_ms is not None else "-",
        result.latency_ms,
        result.prompt_tokens,
        result.completion_tokens,
        result.cost,
        result.cost_source,
        result.generation_id or "-",
    )


def _log_refusal(user_id: int, source: str, requested: str, error: GatewayError) -> None:
    call_log.info(
        "call user=%s source=%s requested=%s served=- status=refused code=%s http_status=%s",
        user_id,
        source,
        requested,
        error.code,
        error.status,
    )


_admit = _in_thread(admit)
_admit_key = _in_thread(admit_key)
_finish = _in_thread(finish)


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))


def _usage_outcome(admission: Admission, served: str, usage: Usage | None, text: str) -> dict[str, Any]:
    """Tokens and cost: reported when upstream said, else estimated at the served model's catalog price."""
    if usage is not None:
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
    else:
        prompt, completion = admission.shape.prompt_tokens, count_text_tokens(text)
    if usage is not None and usage.cost is not None:
        cost, source = usage.cost, LedgerEntry.CostSource.REPORTED
    else:
        cost, source = estimate(admission.model(served), prompt, completion), LedgerEntry.CostSource.ESTIMATED
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": usage.cached_tokens if usage else 0,
        "reasoning_tokens": usage.reasoning_tokens if usage else 0,
        "cost": cost,
        "cost_source": source,
    }


def _base_outcome(admission: Admission, status: str, **fields: Any) -> Outcome:
    return Outcome(
        user_id=admission.user_id,
        source=admission.source,
        api_key_id=admission.api_key_id,
        requested_model=admission.requested_model,
        status=status,
        **fields,
    )


def upstream_failed(error: OpenRouterError) -> UpstreamFailed:
    """An OpenRouter error as the gateway reports it, with the status that says what it means to a caller."""
    if isinstance(error, BadRequest):
        status, message = 400, f"The model provider rejected the request: {error.message}"
    elif isinstance(error, AuthenticationError):
        status, message = 502, "orweb's OpenRouter key was refused; tell an admin."
    elif isinstance(error, InsufficientCredits):
        status, message = 402, "The shared OpenRouter account is out of credits; tell an admin."
    elif isinstance(error, ModerationError):
        status, message = 403, f"The request was blocked by moderation: {error.message}"
    elif isinstance(error, NotFound):
        status, message = 404, f"No provider can serve this request: {error.message}"
    elif isinstance(error, RateLimited):
        status, message = 429, "The model provider is rate limiting; try again later."
    elif isinstance(error, Overloaded):
        status, message = 503, "The model provider is overloaded; try again later."
    elif isinstance(error, RequestTimeout):
        status, message = 504, "The model provider did not answer in time."
    else:
        status, message = 502, f"The model provider failed: {error.message}"
    return UpstreamFailed(message, status=status, upstream=error, retry_after=error.retry_after)


def _attempt_notes(attempts: list[tuple[str, OpenRouterError]]) -> list[tuple[str, str]]:
    return [(model, str(error)) for model, error in attempts if model]


async def complete(user: Any, request: ChatRequest, *, source: str, api_key: Any = None) -> Completion:
    """One non-streaming call through the metered path."""
    return await _complete(await _admit(user, request, source=source, api_key=api_key))


async def complete_with_key(secret: str, request: ChatRequest, *, source: str = "api") -> Completion:
    """`complete` for the holder of a personal API key (InvalidApiKey when it is unknown or revoked)."""
    return await _complete(await _admit_key(secret, request, source=source))


async def _complete(admission: Admission) -> Completion:
    started = time.monotonic()
    try:
        answer = await get_client().chat(admission.body, fallback_models=[m.pk for m in admission.chain[1:]])
    except OpenRouterError as error:
        admission.skipped += _attempt_notes(error.attempts[:-1])
        await _finish(
            admission,
            _base_outcome(admission, LedgerEntry.Status.ERROR, error=str(error), latency_ms=_elapsed_ms(started)),
        )
        raise upstream_failed(error) from error
    except BaseException:
        outcome = _base_outcome(
            admission,
            LedgerEntry.Status.CANCELLED,
            error="cancelled before an answer",
            latency_ms=_elapsed_ms(started),
        )
        await asyncio.shield(_finish(admission, outcome))
        raise
    admission.skipped += _attempt_notes(answer.attempts)
    tool_text = "".join(str((c.get("function") or {}).get("arguments") or "") for c in answer.tool_calls)
    outcome = _base_outcome(
        admission,
        LedgerEntry.Status.OK,
        served_model=answer.model,
        provider=answer.provider or "",
        generation_id=answer.generation_id or None,
        latency_ms=_elapsed_ms(started),
        **_usage_outcome(admission, answer.model, answer.usage, answer.content + (answer.reasoning or "") + tool_text),
    )
    result = await asyncio.shield(_finish(admission, outcome))
    result.finish_reason = answer.finish_reason
    return Completion(
        content=answer.content,
        reasoning=answer.reasoning,
        tool_calls=answer.tool_calls,
        finish_reason=answer.finish_reason or "stop",
        result=result,
        raw=answer.raw,
    )


class MeteredStream:
    """`async with metered.stream(user, request, source=...) as call: async for event in call: ...`

    Policy, rate limit and hold happen on entering (GatewayError before any upstream call). Leaving the
    block closes the upstream stream and settles exactly once: "ok" after a finish, "cancelled" when the
    block exits early (break, exception, task cancellation), "error"/"incomplete" after a stream error;
    what was generated is paid for (estimated at catalog price when no usage came, reconciled later).
    """

    def __init__(
        self,
        user: Any,
        request: ChatRequest,
        *,
        source: str,
        api_key: Any = None,
        key_secret: str | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._user = user
        self._key_secret = key_secret
        self._request = request
        self._source = source
        self._api_key = api_key
        self._admission: Admission | None = None
        self._admitted = admission
        self._context: Any = None
        self._events: Any = None
        self._started = 0.0
        self._ttft_ms: int | None = None
        self._pieces: list[str] = []
        self._usage: Usage | None = None
        self._finish_reason: str | None = None
        self._error: OpenRouterError | None = None
        self.result: CallResult | None = None
        self.chosen_model: str | None = None
        self.skipped: list[tuple[str, str]] = []

    async def __aenter__(self) -> MeteredStream:
        if self._admitted is not None:
            admission = self._admitted
        elif self._key_secret is not None:
            admission = await _admit_key(self._key_secret, self._request, source=self._source, slot=uuid.uuid4().hex)
        else:
            admission = await _admit(
                self._user, self._request, source=self._source, api_key=self._api_key, slot=uuid.uuid4().hex
            )
        self._admission = admission
        self.chosen_model = admission.chosen_model
        self._started = time.monotonic()
        self._context = get_client().stream(admission.body, fallback_models=[m.pk for m in admission.chain[1:]])
        try:
            self._events = await self._context.__aenter__()
        except OpenRouterError as error:
            admission.skipped += _attempt_notes(error.attempts[:-1])
            await self._settle(
                _base_outcome(
                    admission,
                    LedgerEntry.Status.ERROR,
                    error=str(error),
                    latency_ms=_elapsed_ms(self._started),
                )
            )
            raise upstream_failed(error) from error
        except BaseException:
            await self._settle(
                _base_outcome(
                    admission,
                    LedgerEntry.Status.CANCELLED,
                    error="cancelled before an answer",
                    latency_ms=_elapsed_ms(self._started),
                )
            )
            raise
        admission.skipped += _attempt_notes(self._events.attempts)
        self.skipped = admission.skipped
        return self

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> Any:
        event = await self._events.__anext__()
        if isinstance(event, (TextDelta, ReasoningDelta)):
            self._first_token()
            self._pieces.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self._first_token()
            self._pieces.append((event.name or "") + event.arguments)
        elif isinstance(event, Usage):
            self._usage = event
        elif isinstance(event, Finish):
            self._finish_reason = event.reason
        elif isinstance(event, StreamError):
            self._error = event.error
        return event

    def _first_token(self) -> None:
        if self._ttft_ms is None:
            self._ttft_ms = _elapsed_ms(self._started)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self.result is not None or self._admission is None:
            return False
        try:
            await asyncio.shield(self._context.__aexit__(None, None, None))
        finally:
            await self._settle(self._stream_outcome(self._admission))
        return False

    def _stream_outcome(self, admission: Admission) -> Outcome:
        if self._error is not None:
            incomplete = isinstance(self._error, (IncompleteStream, IdleTimeout))
            status = LedgerEntry.Status.INCOMPLETE if incomplete else LedgerEntry.Status.ERROR
            error = str(self._error)
        elif self._finish_reason is not None:
            status, error = LedgerEntry.Status.OK, ""
        else:
            status, error = LedgerEntry.Status.CANCELLED, "stopped by the caller"
        served = self._events.model
        return _base_outcome(
            admission,
            status,
            served_model=served,
            provider=self._events.provider or "",
            generation_id=self._events.generation_id or None,
            error=error,
            ttft_ms=self._ttft_ms,
            latency_ms=_elapsed_ms(self._started),
            **_usage_outcome(admission, served, self._usage, "".join(self._pieces)),
        )

    async def _settle(self, outcome: Outcome) -> None:
        assert self._admission is not None
        self.result = await asyncio.shield(_finish(self._admission, outcome))
        self.result.finish_reason = self._finish_reason
        self.skipped = self.result.skipped


def stream(
    user: Any, request: ChatRequest, *, source: str, api_key: Any = None, admission: Admission | None = None
) -> MeteredStream:
    """One streaming call through the metered path (see MeteredStream). With `admission` (from
    `admit_stream`) it goes straight to the call; `request` is then what was admitted."""
    return MeteredStream(user, request, source=source, api_key=api_key, admission=admission)


async def abandon(admission: Admission) -> CallResult:
    """Settle an admission whose call was never made (its reply was stopped first): a cancelled ledger
    entry with nothing spent, its hold and stream slot given back."""
    outcome = _base_outcome(admission, LedgerEntry.Status.CANCELLED, error="cancelled before the call", latency_ms=0)
    return await asyncio.shield(_finish(admission, outcome))


def stream_with_key(secret: str, request: ChatRequest, *, source: str = "api") -> MeteredStream:
    """`stream` for the holder of a personal API key: the key is checked on entering, with admission."""
    return MeteredStream(None, request, source=source, key_secret=secret)


def resolve_model_for(user: Any, request: ChatRequest) -> str:
    """The model a call would go to (what `orweb/auto*` picks), or the GatewayError that refuses it."""
    shape = shape_of(request.messages, _requested_max_tokens(request), request.params)
    model, _ = _pick_model(user, request, shape)
    return model.pk


def hold_amount(model: CatalogModel, shape: Shape) -> Decimal:
    """The worst case a call of this shape to this model would hold (for estimates shown in UIs)."""
    return worst_case(model, shape.prompt_tokens, max_tokens_for(model, shape), shape.images)

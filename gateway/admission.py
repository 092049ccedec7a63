"""Admission: the first three steps of the metered path, before anything is spent.

Policy (the model and its fallbacks allowed, the request fits them, its parameters within
`gateway.params`), then the rate limit (requests, tokens, stream slots in Redis), then the budget hold for
the worst case of the dearest model in the chain. All of it reads PostgreSQL once (`gateway.context`) and
runs as plain synchronous code, in one database thread hop; a refusal raises a GatewayError and is logged.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing import attempts, ratelimit
from billing.budgets import remaining_for
from billing.holds import place_hold
from billing.pricing import worst_case
from billing.ratelimit import limits_from, release_stream_slot
from catalog.models import CatalogModel
from gateway import auto, params
from gateway import context as call_context
from gateway.context import CallContext
from gateway.policy import Shape, check_fits, check_model_allowed, check_web_search, max_tokens_for, misfit, shape_of
from gateway.types import AUTO_MODELS, ChatRequest
from orweb import metrics
from orweb.errors import GatewayError, InvalidApiKey, InvalidRequest, ServiceUnavailable
from orweb.upstream import openrouter_user_id

call_log = logging.getLogger("orweb.calls")


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
    attempt_id: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    endpoint: str = "chat"
    response_cache: bool = False

    def model(self, model_id: str | None) -> CatalogModel:
        """The chain's model that served (the first one when upstream didn't say)."""
        return next((m for m in self.chain if m.pk == model_id), self.chain[0])


def admit(user: Any, request: ChatRequest, *, source: str, api_key: Any = None, slot: str | None = None) -> Admission:
    """Policy, then rate limit, then budget hold; raises a GatewayError before anything is spent."""
    context = call_context.for_user(user, model_ids(request))
    return _admit_in(context, request, source=source, api_key=api_key, slot=slot)


def admit_key(secret: str, request: ChatRequest, *, source: str, slot: str | None = None) -> Admission:
    """`admit` for a call made with a personal API key, read in the same statement as what admission
    checks (InvalidApiKey when the key is unknown or revoked): one thread hop and one round trip."""
    context = call_context.for_key(secret, model_ids(request))
    if context is None:
        raise InvalidApiKey("Invalid or revoked API key.")
    return _admit_in(context, request, source=source, api_key=context.api_key, slot=slot)


def model_ids(request: ChatRequest) -> list[str]:
    ids = [model_id for model_id in (request.model, *request.fallback_models) if isinstance(model_id, str)]
    return [split_variant(model_id)[0] for model_id in ids]


ROUTING_VARIANTS = (":nitro", ":floor")
MILLION = Decimal(1_000_000)


@dataclass
class Plan:
    """Where a request would go and what it may cost, decided from what admission reads (no side effects):
    admission acts on it, and the price shown before Send (`gateway.estimate`) shows it."""

    params: dict[str, Any]
    shape: Shape
    model: CatalogModel
    auto_mode: str | None
    variant: str
    max_tokens: int
    chain: list[CatalogModel]
    skipped: list[tuple[str, str]]

    def worst_case(self) -> Decimal:
        """The hold: the worst case of the dearest model in the chain, per-use fees included."""
        shape = self.shape
        return max(worst_case(m, shape.prompt_tokens, self.max_tokens, shape.images, shape.fees) for m in self.chain)

    def body(self, user_id: int, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The upstream request. With routing preferences (`provider`, `:nitro` / `:floor`) it carries a
        `provider.max_price` at the prices the hold was computed from, so no provider can cost more."""
        body = {
            **self.params,
            "model": self.model.pk + self.variant,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "user": openrouter_user_id(user_id),
        }
        if self.variant or params.widens_routing(self.params.get("provider")):
            body["provider"] = params.capped_provider(self.params.get("provider"), held_prices(self.model))
        return body


def held_prices(model: CatalogModel) -> dict[str, Decimal]:
    """The model's catalog prices as OpenRouter's `max_price` reads them (per million tokens; per request and
    per image as they are)."""
    return {
        "prompt": model.prompt_price * MILLION,
        "completion": model.completion_price * MILLION,
        "request": model.request_price,
        "image": model.image_price,
    }


def split_variant(model_id: str) -> tuple[str, str]:
    """("vendor/model", ":nitro") for a routing variant; the id and "" otherwise."""
    for variant in ROUTING_VARIANTS:
        if model_id.endswith(variant):
            return model_id[: -len(variant)], variant
    return model_id, ""


def plan(context: CallContext, request: ChatRequest) -> Plan:
    """Policy and fit (GatewayError when refused): the model, its fallbacks, max_tokens and the hold."""
    user = context.user
    passed = params.check(request.params)
    shape = shape_of(request.messages, request.max_tokens, passed, embeddings=request.endpoint == "embeddings")
    check_web_search(user, [request.model, *request.fallback_models], shape, context.policies)
    model, auto_mode, variant = _pick_model(user, request, shape, context)
    max_tokens = max_tokens_for(model, shape)
    fallbacks, skipped = _fallbacks(user, request, shape, max_tokens, model.pk, context)
    return Plan(passed, shape, model, auto_mode, variant, max_tokens, [model, *fallbacks], skipped)


def _admit_in(context: CallContext, request: ChatRequest, *, source: str, api_key: Any, slot: str | None) -> Admission:
    user = context.user
    try:
        planned = plan(context, request)
        shape, max_tokens = planned.shape, planned.max_tokens
        ratelimit.take(user.pk, limits_from(context.rate_limits), shape.prompt_tokens + max_tokens, slot)
        # The attempt is journaled before its hold exists (with the hold's id), so a process killed in
        # between leaves a journal that releases the hold, never a hold that nothing knows of.
        hold_id = uuid.uuid4()
        attempt_id = None
        try:
            attempt_id = _begin(user.pk, source, api_key, request.model, hold_id, slot)
            hold = place_hold(user, planned.worst_case(), hold_id=hold_id)
        except BaseException:
            if slot is not None:
                release_stream_slot(user.pk, slot)
            if attempt_id is not None:
                attempts.forget(attempt_id)
            raise
    except GatewayError as error:
        _log_refusal(user.pk, source, request.model, error)
        raise
    model, chain, auto_mode = planned.model, planned.chain, planned.auto_mode
    body = planned.body(user.pk, request.messages)
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
        attempt_id=attempt_id,
        skipped=planned.skipped,
        endpoint=request.endpoint,
        response_cache=request.response_cache,
    )


def _begin(user_id: int, source: str, api_key: Any, requested_model: str, hold_id: Any, slot: str | None) -> str:
    """Journal the attempt before anything is spent; if the journal can't be written, nothing is (the call
    is refused)."""
    try:
        return attempts.begin(
            user_id=user_id,
            source=source,
            api_key_id=getattr(api_key, "pk", api_key),
            requested_model=requested_model,
            hold_id=hold_id,
            slot=slot,
        )
    except OSError as error:
        raise ServiceUnavailable("orweb can't record calls right now (its journal can't be written).") from error


def _is_auto(model_id: str) -> bool:
    return model_id in AUTO_MODELS or model_id.startswith("orweb/auto:")


def _pick_model(
    user: Any, request: ChatRequest, shape: Shape, context: CallContext
) -> tuple[CatalogModel, str | None, str]:
    """The model the call goes to, the `orweb/auto*` mode that chose it (None when the caller named it) and
    the routing variant asked for (`:nitro`, `:floor` or "")."""
    if _is_auto(request.model):
        if request.endpoint != "chat":
            raise InvalidRequest(f"{request.model!r} chooses chat models; name a model here.", param="model")
        return auto.choose(user, request.model, shape, remaining_for(user)), request.model, ""
    model_id, variant = split_variant(request.model)
    model = check_model_allowed(user, request.model, context.models.get(model_id), context.policies)
    check_fits(model, shape)
    return model, None, variant


def _fallbacks(
    user: Any, request: ChatRequest, shape: Shape, max_tokens: int, primary: str, context: CallContext
) -> tuple[list[CatalogModel], list[tuple[str, str]]]:
    """The allowed fallback models that take this request as is; the others with why they were skipped."""
    chain: list[CatalogModel] = []
    skipped: list[tuple[str, str]] = []
    exact = dataclasses.replace(shape, max_tokens=max_tokens)
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


def _log_refusal(user_id: int, source: str, requested: str, error: GatewayError) -> None:
    call_log.info(
        "call user=%s source=%s requested=%s served=- status=refused code=%s http_status=%s",
        user_id,
        source,
        requested,
        error.code,
        error.status,
    )
    metrics.observe_refusal(source, error.code)

"""`orweb/auto*`: pick a model for the caller from the models they may use.

The rule, in order:
1. Candidates are the models this user may call (gateway.policy) that fit the request: image input
   if the prompt has images, tool support if it has tools, and prompt + max_tokens within the context.
2. A candidate's worst-case cost (the amount its hold would be) must be within the per-request cap
   `ORWEB_AUTO_MAX_REQUEST_USD` (default 0.50) and within what the user's tightest budget has left.
3. Among the candidates, by mode:
   - `orweb/auto:cost`: the cheapest worst case (ties: model id).
   - `orweb/auto:speed`: the best completion tokens/second measured from our own ledger over the last
     7 days (at least 3 successful calls with a time to first token); unmeasured models come after,
     cheapest first.
   - `orweb/auto:quality` and plain `orweb/auto`: the admins' QualityRank order (lowest rank first);
     unranked models come after in the catalog's default order (catalog.quality: price tier, tools,
     context, recency), so a team with no ranks set still gets a capable model, not the cheapest.
The call reports the chosen model (`chosen_model`, `CallResult.served_model`, /v1's `model`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Sum
from django.utils import timezone

from billing.models import LedgerEntry
from billing.pricing import worst_case
from catalog import quality
from catalog.models import CatalogModel, QualityRank
from gateway.policy import Shape, allowed_models, max_tokens_for, misfit
from orweb.errors import InvalidRequest, ModelUnavailable

SPEED_WINDOW = dt.timedelta(days=7)
SPEED_MIN_SAMPLES = 3


def mode_of(model_id: str) -> str:
    mode = model_id.partition(":")[2] or "quality"
    if mode not in ("cost", "speed", "quality"):
        raise InvalidRequest(f"Unknown auto mode {model_id!r}.", param="model")
    return mode


def max_request_usd() -> Decimal:
    return Decimal(str(getattr(settings, "ORWEB_AUTO_MAX_REQUEST_USD", "0.50")))


def candidates(user: Any, shape: Shape, remaining: Decimal | None) -> list[tuple[CatalogModel, Decimal]]:
    """(model, worst-case cost) of every model this request could go to under rules 1 and 2."""
    cap = max_request_usd() if remaining is None else min(max_request_usd(), remaining)
    models = allowed_models(user).exclude(pk__startswith="openrouter/")
    if shape.has_images:
        models = models.filter(input_modalities__contains=["image"])
    if shape.uses_tools:
        models = models.filter(supported_parameters__contains=["tools"])
    found = []
    for model in models:
        if misfit(model, shape) is not None:
            continue
        cost = worst_case(model, shape.prompt_tokens, max_tokens_for(model, shape), shape.images, shape.fees)
        if cost <= cap:
            found.append((model, cost))
    return found


def measured_speeds(model_ids: list[str]) -> dict[str, float]:
    """Completion tokens per second of each model, from our own successful calls (not money: float)."""
    rows = (
        LedgerEntry.objects.filter(
            served_model__in=model_ids,
            status=LedgerEntry.Status.OK,
            created__gte=timezone.now() - SPEED_WINDOW,
            completion_tokens__gt=0,
            ttft_ms__isnull=False,
        )
        .values("served_model")
        .annotate(tokens=Sum("completion_tokens"), ms=Sum(F("latency_ms") - F("ttft_ms")), n=Count("pk"))
        .filter(n__gte=SPEED_MIN_SAMPLES)
    )
    return {row["served_model"]: row["tokens"] * 1000 / row["ms"] for row in rows if row["ms"] and row["ms"] > 0}


def choose(user: Any, model_id: str, shape: Shape, remaining: Decimal | None) -> CatalogModel:
    """The model `orweb/auto[:mode]` answers with for this user and request (see the module rule)."""
    mode = mode_of(model_id)
    found = candidates(user, shape, remaining)
    if not found:
        raise ModelUnavailable(
            "No model you may use fits this request within the per-request cap and your remaining budget.",
            param="model",
        )
    if mode == "speed":
        speeds = measured_speeds([model.pk for model, _ in found])
        found.sort(key=lambda c: (c[0].pk not in speeds, -speeds.get(c[0].pk, 0.0), c[1], c[0].pk))
    elif mode == "quality":
        ranks = dict(QualityRank.objects.filter(model__in=[m for m, _ in found]).values_list("model_id", "rank"))
        # Unranked models follow the catalog's default order (price tier, tools, context, recency).
        found.sort(key=lambda c: (c[0].pk not in ranks, ranks.get(c[0].pk, 0), quality.default_key(c[0])))
    else:
        found.sort(key=lambda c: (c[1], c[0].pk))
    return found[0][0]

"""Provider routing: which of a model's endpoints serves a request, as OpenRouter's ``provider`` object and
the ``:nitro`` / ``:floor`` variants choose.

``only`` / ``ignore`` and ``max_price`` are hard filters (nothing left: 404, and that candidate fails, so a
``models`` fallback list moves on); ``order`` tries the named providers first (only them with
``allow_fallbacks: false``); ``sort`` (or ``:nitro`` = throughput, ``:floor`` = price) orders the rest.
Without preferences the cheapest endpoint serves (OpenRouter weights its load balancing by price; the
simulator is deterministic). ``max_price`` is in USD per million tokens for ``prompt`` and ``completion``,
per request and per image for ``request`` and ``image``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from openrouter.simulator.errors import SimError
from openrouter.simulator.state import Endpoint, SimModel

VARIANT_SORTS = {":nitro": "throughput", ":floor": "price"}
SORTS = ("price", "throughput", "latency")
_PER_MILLION = {"prompt": Decimal(1_000_000), "completion": Decimal(1_000_000), "request": 1, "image": 1}


def check_provider(provider: Any) -> dict[str, Any]:
    """The ``provider`` object, validated as OpenRouter does (400 naming the field)."""
    if provider is None:
        return {}
    if not isinstance(provider, dict):
        raise SimError(400, "provider: expected an object")
    for name in ("order", "only", "ignore"):
        value = provider.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise SimError(400, f"provider.{name}: expected an array of provider names")
    sort = provider.get("sort")
    if isinstance(sort, dict):
        sort = sort.get("by")
    if sort is not None and sort not in SORTS:
        raise SimError(400, f"provider.sort: expected one of {', '.join(SORTS)}")
    max_price = provider.get("max_price")
    if max_price is not None:
        if not isinstance(max_price, dict):
            raise SimError(400, "provider.max_price: expected an object")
        for key, value in max_price.items():
            if _number(value) is None:
                raise SimError(400, f"provider.max_price.{key}: expected a number")
    return provider


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _within(endpoint: Endpoint, max_price: dict[str, Any]) -> bool:
    for key, limit in max_price.items():
        scale = _PER_MILLION.get(key)
        ceiling = _number(limit)
        if scale is not None and ceiling is not None and endpoint.price(key) * scale > ceiling:
            return False
    return True


def choose_endpoint(model: SimModel, provider: dict[str, Any], variant: str = "") -> Endpoint:
    """The endpoint that serves ``model`` under these preferences, or a 404 when none qualifies."""
    only = {p.lower() for p in provider.get("only") or ()}
    ignore = {p.lower() for p in provider.get("ignore") or ()}
    endpoints = [
        e for e in model.endpoints if (not only or e.provider.lower() in only) and e.provider.lower() not in ignore
    ]
    if not endpoints:
        raise SimError(404, f"No endpoints found for {model.id} that match your provider preferences")
    endpoints = [e for e in endpoints if _within(e, provider.get("max_price") or {})]
    if not endpoints:
        raise SimError(
            404,
            f"No endpoints found for {model.id} within your max_price",
            {"error_type": "provider_unavailable"},
        )
    sort = provider.get("sort")
    sort = VARIANT_SORTS.get(variant) or (sort.get("by") if isinstance(sort, dict) else sort) or "price"
    if sort == "price":
        endpoints.sort(key=lambda e: (e.price("prompt") + e.price("completion"), e.provider))
    else:
        endpoints.sort(key=lambda e: (-e.throughput, e.provider))
    order = [name.lower() for name in provider.get("order") or ()]
    if order:
        ranked = [e for name in order for e in endpoints if e.provider.lower() == name]
        rest = [e for e in endpoints if e not in ranked]
        endpoints = ranked + ([] if provider.get("allow_fallbacks") is False else rest)
        if not endpoints:
            raise SimError(404, f"No endpoints found for {model.id} among {', '.join(provider['order'])}")
    return endpoints[0]

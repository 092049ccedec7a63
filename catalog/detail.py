"""One model's page: what it is, what it takes and gives, what it costs and has cost.

The price history is drawn as steps (Chart.js, from static/vendor) from `PriceChange`, one point per
change and a last one today at the catalog's current price.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from catalog.models import MILLION, CatalogModel, PriceChange
from catalog.viewer import team_cost_this_month


def _per_million(price: Decimal | None) -> str | None:
    return None if price is None else format((price * MILLION).normalize(), "f")


def price_chart(model: CatalogModel) -> dict[str, Any]:
    """Chart.js data: prompt and completion USD per million tokens, one step per change, up to today."""
    changes = list(PriceChange.objects.filter(model=model).order_by("effective_from"))
    labels = [change.effective_from.astimezone(dt.UTC).date().isoformat() for change in changes]
    prompt = [_per_million(change.prompt_price) for change in changes]
    completion = [_per_million(change.completion_price) for change in changes]
    labels.append(timezone.now().astimezone(dt.UTC).date().isoformat())
    prompt.append(_per_million(model.prompt_price))
    completion.append(_per_million(model.completion_price))
    return {
        "labels": labels,
        "series": [
            {"label": "prompt $/M tokens", "data": prompt},
            {"label": "completion $/M tokens", "data": completion},
        ],
    }


@dataclass(frozen=True)
class OtherPrice:
    label: str
    price: Decimal
    unit: str


def other_prices(model: CatalogModel) -> list[OtherPrice]:
    """The prices beyond prompt and completion that apply to this model (a missing price is 0: not shown)."""
    found = [
        OtherPrice("Per request", model.request_price, "request"),
        OtherPrice("Per image", model.image_price, "image"),
        OtherPrice("Cache read", (model.cache_read_price or 0) * MILLION, "million tokens"),
        OtherPrice("Cache write", (model.cache_write_price or 0) * MILLION, "million tokens"),
        OtherPrice("Web search", model.web_search_price or Decimal(0), "search"),
    ]
    return [price for price in found if price.price > 0]


def detail_context(model: CatalogModel) -> dict[str, Any]:
    """What `catalog/detail.html` shows of `model`."""
    return {
        "model": model,
        "chart": price_chart(model),
        "other_prices": other_prices(model),
        "team_cost": team_cost_this_month(model.pk),
        "supports_reasoning": "reasoning" in model.supported_parameters,
    }

"""The console's models page: what each model cost the team in the range, one model's price history, the
price changes of the last 30 days and the models about to retire that people still use.

Costs come from the team's rollup per day, model and source; the retiring models' users from the daily rollup
by its `(model, day)` index; prices from the catalog's price history (`PriceChange`, indexed by model).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from billing.budgets import today
from billing.models import DailyModelUsage, DailyUsage
from catalog.models import MILLION, CatalogModel, PriceChange
from console.explorer import level
from console.filters import Selection

RECENT_DAYS = 30
RETIRING_DAYS = 60  # "about to retire": expiring within this many days, or already gone from OpenRouter


@dataclass(frozen=True)
class ModelCost:
    model: str
    cost: Decimal
    requests: int
    level: int
    link: str


@dataclass(frozen=True)
class Retiring:
    model: CatalogModel
    people: int
    cost: Decimal
    last_used: dt.date


def _per_million(price: Decimal | None) -> Decimal | None:
    return None if price is None else (price * MILLION).normalize()


def costs(selection: Selection) -> list[ModelCost]:
    """Every model used in the range with its cost and calls, costliest first, from the team's rollup per
    day, model and source. Who used each is one click away (the explorer filtered by the model): counting
    distinct people per model would read the per-person rollup, a hundred times bigger."""
    rows = list(
        DailyModelUsage.objects.filter(day__range=(selection.start, selection.end))
        .values("model")
        .annotate(cost=Sum("cost"), requests=Sum("requests"))
        .order_by("-cost", "model")
    )
    peak = rows[0]["cost"] if rows else Decimal(0)
    return [
        ModelCost(
            model=row["model"],
            cost=row["cost"],
            requests=row["requests"],
            level=level(row["cost"], peak),
            link=selection.query(model=row["model"]),
        )
        for row in rows
    ]


def price_history(model_id: str) -> dict[str, Any]:
    """Chart.js data of a model's prompt and completion prices per million tokens over time, one step per
    change, ending today at the catalog's current price."""
    changes = list(PriceChange.objects.filter(model_id=model_id).order_by("effective_from"))
    labels = [change.effective_from.astimezone(dt.UTC).date().isoformat() for change in changes]
    prompt = [_per_million(change.prompt_price) for change in changes]
    completion = [_per_million(change.completion_price) for change in changes]
    current = CatalogModel.objects.filter(pk=model_id).first()
    if current is not None:
        labels.append(today().isoformat())
        prompt.append(_per_million(current.prompt_price))
        completion.append(_per_million(current.completion_price))
    return {
        "labels": labels,
        "series": [
            {"label": "prompt $/M tokens", "data": [None if p is None else str(p) for p in prompt]},
            {"label": "completion $/M tokens", "data": [None if p is None else str(p) for p in completion]},
        ],
    }


def recent_changes(days: int = RECENT_DAYS) -> list[dict[str, Any]]:
    """Price changes of the last `days` days, newest first, each with the price it replaced (per million)."""
    before = PriceChange.objects.filter(model=OuterRef("model"), effective_from__lt=OuterRef("effective_from"))
    before = before.order_by("-effective_from")
    changes = (
        PriceChange.objects.filter(effective_from__gte=timezone.now() - dt.timedelta(days=days))
        .annotate(
            was_prompt=Subquery(before.values("prompt_price")[:1]),
            was_completion=Subquery(before.values("completion_price")[:1]),
        )
        .order_by("-effective_from", "model_id")
    )
    return [
        {
            "model": change.model_id,
            "when": change.effective_from,
            "source": change.source,
            "prompt": _per_million(change.prompt_price),
            "completion": _per_million(change.completion_price),
            "was_prompt": _per_million(change.was_prompt),
            "was_completion": _per_million(change.was_completion),
            "up": _went_up(change),
        }
        for change in changes
    ]


def _went_up(change: PriceChange) -> bool:
    pairs = [(change.prompt_price, change.was_prompt), (change.completion_price, change.was_completion)]
    return any(new is not None and old is not None and new > old for new, old in pairs)


def retiring_in_use(days: int = RETIRING_DAYS) -> list[Retiring]:
    """Models expiring within `days` days (or no longer offered) that someone used in the last 30 days."""
    now = today()
    leaving = CatalogModel.objects.filter(
        Q(expiration_date__lte=now + dt.timedelta(days=days)) | Q(is_available=False)
    ).in_bulk()
    usage = (
        DailyUsage.objects.filter(day__gte=now - dt.timedelta(days=RECENT_DAYS - 1), model__in=list(leaving))
        .values("model")
        .annotate(people=Count("user", distinct=True), cost=Sum("cost"), last_used=Max("day"))
        .order_by("-people", "model")
    )
    return [Retiring(leaving[row["model"]], row["people"], row["cost"], row["last_used"]) for row in usage]

"""Test data for spend pages: a day's usage written to the rollups at once, as `settle` writes them
(the rows added to when they exist), without a ledger row behind it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import F

from billing.models import DailyKeyUsage, DailyModelUsage, DailyPersonSourceUsage, DailyPersonUsage, DailyUsage


def _add(model: Any, keys: dict[str, Any], sums: dict[str, Any]) -> None:
    row, created = model.objects.get_or_create(**keys, defaults=sums)
    if not created:
        model.objects.filter(pk=row.pk).update(**{name: F(name) + value for name, value in sums.items()})


def add_usage(
    day: dt.date,
    user: Any,
    model: str,
    *,
    source: str = "chat",
    requests: int = 1,
    errors: int = 0,
    cost: Decimal = Decimal(0),
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    key: int | None = None,
) -> None:
    """Add one day's usage of a person, model and source (and API key) to every rollup."""
    sums = {
        "requests": requests,
        "errors": errors,
        "cost": Decimal(cost),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
    }
    _add(DailyUsage, {"day": day, "user": user, "model": model, "source": source}, sums)
    _add(DailyModelUsage, {"day": day, "model": model, "source": source}, sums)
    _add(DailyPersonUsage, {"day": day, "user": user}, sums)
    _add(DailyPersonSourceUsage, {"day": day, "user": user, "source": source}, sums)
    if key is not None:
        _add(DailyKeyUsage, {"day": day, "api_key_id": key, "user": user, "model": model, "source": source}, sums)

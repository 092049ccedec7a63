"""The models pages' view of a person (`catalog.viewer`), supplied from above the catalog: the gateway's
policy says which models they may use, billing's team rollup what a model cost the team this month."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum

from billing.budgets import today
from billing.models import DailyModelUsage
from catalog import viewer
from gateway.policy import allowed_models


def team_cost_this_month(model_id: str) -> Decimal:
    """Everyone's spend on `model_id` (as served) since the first of this month (one query, on the team
    rollup: a few rows a day)."""
    total = DailyModelUsage.objects.filter(model=model_id, day__gte=today().replace(day=1)).aggregate(cost=Sum("cost"))
    return total["cost"] or Decimal(0)


def connect() -> None:
    viewer.register(allowed=allowed_models, team_cost=team_cost_this_month)

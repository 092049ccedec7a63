"""What the models pages show a person beyond the catalog itself: which models they may use, and what a
model cost the team this month.

Both are known only to layers above the catalog (the gateway's policy, billing's ledger), and the catalog
never imports those. So the app on top that composes them registers the two functions here when it loads
(see `chat.apps`). Until then nobody may use any model (fail closed) and no spend is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from catalog.models import CatalogModel


@dataclass
class _Hooks:
    allowed: Callable[[Any], QuerySet[CatalogModel]] | None = None
    team_cost: Callable[[str], Decimal] | None = None


_hooks = _Hooks()


def register(allowed: Callable[[Any], QuerySet[CatalogModel]], team_cost: Callable[[str], Decimal]) -> None:
    """Say how to read the models a user may use and what a model cost the team this month."""
    _hooks.allowed, _hooks.team_cost = allowed, team_cost


def usable_models(user: Any) -> QuerySet[CatalogModel]:
    """The models `user` may use now (none until a policy is registered)."""
    return CatalogModel.objects.none() if _hooks.allowed is None else _hooks.allowed(user)


def may_use(user: Any, model_id: str) -> bool:
    return usable_models(user).filter(pk=model_id).exists()


def team_cost_this_month(model_id: str) -> Decimal | None:
    """What the whole team spent on this model this calendar month (None when no ledger is registered)."""
    return None if _hooks.team_cost is None else _hooks.team_cost(model_id)

"""The default quality order of `orweb/auto:quality`, read from the catalog when the admins have ranked
no model (QualityRank rows override it).

Without a ranking, the cheapest model used to win, which is the opposite of what "quality" asks for. The
catalog has no benchmark scores, but its prices and sizes track the makers' own tiers closely enough:
a model's price tier (its completion price per million tokens, bucketed so that small price differences
don't reorder a tier) comes first, then tool support, a longer context and a newer release.
"""

from __future__ import annotations

from decimal import Decimal

from catalog.models import MILLION, CatalogModel

# Completion $ per million tokens from which a model is in each tier (highest first).
TIERS = (
    (Decimal(30), "flagship"),
    (Decimal(8), "frontier"),
    (Decimal(2), "large"),
    (Decimal("0.4"), "mid-size"),
    (Decimal(0), "small"),
)


def tier_of(model: CatalogModel) -> int:
    """0 for the top tier, counting down the table; free and unpriced models come last."""
    price = model.completion_price
    if price is None or model.is_free:
        return len(TIERS)
    per_million = price * MILLION
    return next(i for i, (floor, _) in enumerate(TIERS) if per_million >= floor)


def default_key(model: CatalogModel) -> tuple:
    """Sort key of the default order (smaller is better; ties broken by id)."""
    created = model.upstream_created.timestamp() if model.upstream_created else 0.0
    return (tier_of(model), not model.supports_tools, -(model.context_length or 0), -created, model.pk)


def default_order(models: list[CatalogModel]) -> list[CatalogModel]:
    return sorted(models, key=default_key)


def why_default(model: CatalogModel) -> str:
    """Why the default order puts this model first among those that fit, in words."""
    tier = tier_of(model)
    name = TIERS[tier][1] if tier < len(TIERS) else "free"
    context = f"{model.context_length:,}-token context" if model.context_length else "unknown context"
    tools = ", tools" if model.supports_tools else ""
    return f"default quality order (no admin ranking): {name} price tier{tools}, {context}"

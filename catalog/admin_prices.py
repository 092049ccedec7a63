"""Prices set by hand: for a model upstream lists without one, kept until an admin hands it back to the sync."""

from __future__ import annotations

from decimal import ROUND_UP, Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from catalog.models import MILLION, PRICE, CatalogModel, PriceChange

_PRICE_STEP = Decimal(1).scaleb(-PRICE["decimal_places"])


def set_admin_price(
    model_id: str,
    prompt_per_million: Decimal,
    completion_per_million: Decimal,
    user: AbstractBaseUser | None,
) -> CatalogModel:
    """Set a model's token prices by hand (USD per million tokens), e.g. for one upstream lists as
    unknown. Syncs keep this price until an admin clears it; the change is kept in the price history."""
    prompt = _per_token(prompt_per_million, "prompt")
    completion = _per_token(completion_per_million, "completion")
    with transaction.atomic():
        model = CatalogModel.objects.select_for_update().get(pk=model_id)
        model.prompt_price = prompt
        model.completion_price = completion
        model.price_set_by_admin = True
        model.save(update_fields=["prompt_price", "completion_price", "price_set_by_admin"])
        PriceChange.objects.create(
            model=model,
            prompt_price=model.prompt_price,
            completion_price=model.completion_price,
            request_price=model.request_price,
            image_price=model.image_price,
            cache_read_price=model.cache_read_price,
            cache_write_price=model.cache_write_price,
            web_search_price=model.web_search_price,
            source=PriceChange.Source.ADMIN,
            changed_by=user if user is not None and user.pk else None,
        )
    return model


def clear_admin_price(model_id: str) -> None:
    """Hand a model's price back to the sync: the next sync writes upstream's price (and its history)."""
    CatalogModel.objects.filter(pk=model_id).update(price_set_by_admin=False)


def _per_token(per_million: Decimal, label: str) -> Decimal:
    if not isinstance(per_million, Decimal) or not per_million.is_finite() or per_million < 0:
        raise ValueError(f"{label} price must be a non-negative Decimal, got {per_million!r}")
    return (per_million / MILLION).quantize(_PRICE_STEP, rounding=ROUND_UP)

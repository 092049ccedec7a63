"""Display helpers for catalog prices and sizes."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

from catalog.models import MILLION

register = template.Library()

_CENT = Decimal("0.01")
_MICRO = Decimal("0.000001")


@register.filter
def per_million(price_per_token: Decimal | None) -> str:
    """A per-token price as USD per million tokens: "$2.50", "$0.0375", "free" or "price unknown"."""
    if price_per_token is None:
        return "price unknown"
    if price_per_token == 0:
        return "free"
    amount = (price_per_token * MILLION).quantize(_MICRO, rounding=ROUND_HALF_UP).normalize()
    if amount.as_tuple().exponent > -2:
        amount = amount.quantize(_CENT)
    return f"${amount:,f}"


@register.filter
def tokens(count: int | None) -> str:
    """A token count with thousands separators; "?" when upstream didn't say."""
    return "?" if count is None else f"{count:,}"

"""Display helpers for catalog prices and sizes."""

from __future__ import annotations

from decimal import Decimal

from django import template

from catalog.models import MILLION
from orweb.money import format_usd

register = template.Library()


@register.filter
def per_million(price_per_token: Decimal | None) -> str:
    """A per-token price as USD per million tokens, shown as every amount is (orweb.money): "$2.50",
    "$0.0375", "free" or "price unknown"."""
    if price_per_token is None:
        return "price unknown"
    if price_per_token == 0:
        return "free"
    return format_usd(price_per_token * MILLION)


@register.filter
def tokens(count: int | None) -> str:
    """A token count with thousands separators; "?" when upstream didn't say."""
    return "?" if count is None else f"{count:,}"

"""Money and numbers as the chat pages show them."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

CENT = Decimal("0.01")


@register.filter
def usd(value: Decimal | str | None) -> str:
    """Dollars readable at every scale: "$5.00", "$0.0421", "$0.0000123" (tiny per-message costs keep
    their significant digits instead of rounding to $0.00)."""
    if value is None or value == "":
        return ""
    amount = Decimal(value)
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount.quantize(CENT):,}"
    if abs(amount) >= CENT:
        return f"${amount.quantize(Decimal('0.0001')).normalize():f}"
    return f"${amount.quantize(Decimal('0.0000000001')).normalize():f}"


@register.filter
def tokens_short(value: int | None) -> str:
    """A context length as people say it: 128k, 1M."""
    if not value:
        return ""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if value >= 1_000:
        return f"{round(value / 1_000)}k"
    return str(value)

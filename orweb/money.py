"""How an amount of money is shown to people: the one rule every page, frame and CSV uses.

Amounts are Decimal USD. Small amounts keep the digits they need ("$0.0004", never "$0.00"): a
per-message cost or a $0.0005 test budget must not read as nothing.
"""

from __future__ import annotations

from decimal import Decimal

CENT = Decimal("0.01")
_SMALL = Decimal("0.0001")
_TINY = Decimal("0.0000000001")


def format_usd(value: Decimal | str | int | None) -> str:
    """Dollars readable at every scale: "$5.00", "$1,234.50", "$0.0421", "$0.0000123", "-$0.50"; "" for
    no value."""
    if value is None or value == "":
        return ""
    amount = Decimal(value)
    if amount == 0:
        return "$0"
    sign, amount = ("-", -amount) if amount < 0 else ("", amount)
    if amount >= 1:
        return f"{sign}${amount.quantize(CENT):,}"
    step = _SMALL if amount >= CENT else _TINY
    shown = amount.quantize(step).normalize()
    if shown.as_tuple().exponent > -2:  # at least cents: "$0.50", not "$0.5"
        shown = shown.quantize(CENT)
    return f"{sign}${shown:f}"


def json_usd(amount: Decimal) -> float:
    """An amount as a JSON number (OpenAI/OpenRouter shapes carry USD as numbers). Amounts carry at most
    10 decimal places and 15 significant digits, and `repr(float(d))` of such a Decimal prints exactly its
    digits, so the JSON text is the exact amount."""
    return float(amount)


def plain_usd(value: Decimal | None) -> str | None:
    """An amount as an exact plain decimal string ("0.00042"), for machines (JSON, CSV): no rounding."""
    return None if value is None else format(value.normalize(), "f")

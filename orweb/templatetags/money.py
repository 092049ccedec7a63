"""The `usd` filter, available in every template (a builtin, see settings.TEMPLATES)."""

from __future__ import annotations

from decimal import Decimal

from django import template

from orweb.money import format_usd

register = template.Library()


@register.filter
def usd(value: Decimal | str | None) -> str:
    """See orweb.money.format_usd."""
    return format_usd(value)

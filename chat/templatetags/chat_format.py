"""Numbers as the chat pages show them (money: the `usd` builtin filter, orweb.money)."""

from __future__ import annotations

from django import template

register = template.Library()


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

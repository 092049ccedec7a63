"""The budget alert banners on every page of the person they concern (base.html shows them), so a budget
near or at its limit is seen wherever they are, not only on their usage page."""

from __future__ import annotations

from typing import Any

from django import template

from billing.alerts_banners import open_banners

register = template.Library()


@register.inclusion_tag("billing/_alert_banners.html", takes_context=True)
def budget_alert_banners(context: template.Context) -> dict[str, Any]:
    """The signed-in person's open banners (one indexed query), each with its dismiss form."""
    request = context.get("request")
    return {"alert_banners": open_banners(getattr(request, "user", None)), "request": request}

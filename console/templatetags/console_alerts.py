"""The banner on every console page that tells admins of this week's spend anomalies."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import template

from billing.budgets import today
from console.models import SpendAnomaly

register = template.Library()


@register.inclusion_tag("console/_anomaly_banner.html")
def anomaly_banner() -> dict[str, Any]:
    """How many anomalies were flagged for the last 7 days (one indexed count)."""
    since = today() - dt.timedelta(days=6)
    return {"anomalies": SpendAnomaly.objects.filter(day__gte=since).count()}

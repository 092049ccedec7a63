"""The budget alerts' webhook: each threshold a budget period reaches (billing.alerts_banners) is POSTed once
to ORWEB_ALERT_WEBHOOK_URL, so a team can route it to chat, paging or its own books. The body is JSON,
signed under ORWEB_ALERT_WEBHOOK_SECRET as orweb.webhooks describes (delivery id `alert-<id>`), and tried
at most ORWEB_ALERT_WEBHOOK_TRIES times; each try is claimed by its number with a conditional update, so a
redelivered task or two workers never send the same try twice, and a delivered alert is never sent again.
The URL is the admin's own setting, so unlike a batch's webhook it may point inside the network.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from billing.budgets import period_end
from billing.models import BudgetAlert
from orweb import webhooks
from orweb.money import plain_usd

log = logging.getLogger(__name__)


def body(alert: BudgetAlert) -> bytes:
    """The alert as the receiver gets it: amounts as exact decimal strings of USD."""
    budget = alert.period.budget
    if budget.group_id:
        owner: dict[str, Any] = {"group": budget.group.name}
    elif budget.user_id:
        owner = {"person": budget.user.get_username()}
    else:
        owner = {"person": budget.person.get_username(), "set_by_person": True}
    data = {
        "type": "budget.threshold",
        "id": f"alert-{alert.pk}",
        "budget": {"id": budget.pk, "label": budget.label, "period": budget.period, **owner},
        "period": {
            "start": alert.period.start.isoformat(),
            "end": period_end(budget.period, alert.period.start).isoformat(),
        },
        "threshold_percent": alert.threshold,
        "spent_usd": plain_usd(alert.spent),
        "limit_usd": plain_usd(alert.limit_usd),
        "at": alert.created.isoformat(),
    }
    return json.dumps(data, default=str, separators=(",", ":"), sort_keys=True).encode()


def deliver(alert_id: int) -> float | None:
    """One try at POSTing the alert. Seconds to wait before the next try, or None when there is nothing
    more to do (delivered, given up, webhooks off, or another worker has this try)."""
    url, secret = settings.ORWEB_ALERT_WEBHOOK_URL, settings.ORWEB_ALERT_WEBHOOK_SECRET
    owners = ("period__budget__user", "period__budget__group", "period__budget__person")
    alert = BudgetAlert.objects.filter(pk=alert_id).select_related(*owners)
    alert = alert.first()
    if alert is None or not url or alert.webhook_delivered_at:
        return None
    if not secret:
        log.error("ORWEB_ALERT_WEBHOOK_URL is set without ORWEB_ALERT_WEBHOOK_SECRET: alert %s not sent", alert_id)
        return None
    tries = alert.webhook_tries
    if tries >= settings.ORWEB_ALERT_WEBHOOK_TRIES:
        return None
    claimed = BudgetAlert.objects.filter(pk=alert_id, webhook_tries=tries, webhook_delivered_at__isnull=True)
    if not claimed.update(webhook_tries=F("webhook_tries") + 1):
        return None  # another worker took this try
    error = webhooks.post(url, body(alert), secret=secret, delivery=f"alert-{alert.pk}")
    if error is None:
        BudgetAlert.objects.filter(pk=alert_id).update(webhook_delivered_at=timezone.now(), webhook_error="")
        return None
    BudgetAlert.objects.filter(pk=alert_id).update(webhook_error=error[:300])
    log.warning("budget alert %s: webhook try %d failed: %s", alert_id, tries + 1, error)
    if tries + 1 >= settings.ORWEB_ALERT_WEBHOOK_TRIES:
        return None
    return webhooks.wait_after(tries + 1)

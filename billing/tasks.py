"""Celery tasks of billing: thin wrappers; the work is in billing.reconcile, billing.holds,
billing.alerts, billing.alerts_banners, billing.alerts_webhook and billing.books."""

from __future__ import annotations

from celery import shared_task

from billing import alerts_webhook
from billing.alerts import send_budget_alerts
from billing.alerts_banners import raise_threshold_alerts
from billing.attempts import recover
from billing.books import check_books
from billing.holds import release_expired
from billing.reconcile import GenerationPending, reconcile_entry, reconcile_pending


@shared_task(
    acks_late=True,
    autoretry_for=(GenerationPending,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=False,
    max_retries=8,
)
def reconcile_estimated(entry_id: int | None = None) -> int:
    """Reconcile one estimated ledger entry (retrying while OpenRouter answers 404), or sweep them all."""
    if entry_id is None:
        return reconcile_pending()
    return int(reconcile_entry(entry_id))


@shared_task(expires=120)
def release_expired_holds() -> int:
    return release_expired()


@shared_task(expires=55)
def budget_alerts() -> int:
    """E-mail the periods past their alert percentage; raise the in-app banners and webhooks of every
    threshold reached."""
    raise_threshold_alerts()
    return send_budget_alerts()


@shared_task(acks_late=True)
def deliver_alert_webhook(alert_id: int) -> None:
    """One try at the alert's webhook; the next try is a task of its own, later, so waits hold no worker."""
    wait = alerts_webhook.deliver(alert_id)
    if wait is not None:
        deliver_alert_webhook.apply_async(args=[alert_id], countdown=wait)


@shared_task(expires=10 * 60)
def books_balance() -> bool:
    """Compare today's ledger with OpenRouter's usage of the key; True if a check was recorded."""
    return check_books() is not None


@shared_task(expires=25)
def recover_attempts() -> int:
    """Settle what web and worker processes that died left in their journals (also done by every live
    process's own attempts thread; this covers a deployment whose web processes are all gone)."""
    return recover()

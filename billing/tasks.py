"""Celery tasks of billing: thin wrappers; the work is in billing.reconcile, billing.holds and
billing.alerts."""

from __future__ import annotations

from celery import shared_task

from billing.alerts import send_budget_alerts
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
    return send_budget_alerts()

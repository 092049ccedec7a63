"""Celery tasks of the console: thin wrappers; the work is in console.anomalies."""

from __future__ import annotations

from celery import shared_task

from console.anomalies import flag_anomalies


@shared_task(expires=50 * 60)
def flag_spend_anomalies() -> int:
    """Flag today's spend anomalies so far (run through the day by beat)."""
    return flag_anomalies()

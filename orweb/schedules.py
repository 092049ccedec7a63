"""The whole Celery beat schedule, in one place. Every periodic task expires before its next run."""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    "catalog-sync-models": {
        "task": "catalog.tasks.sync_models",
        "schedule": crontab(minute=7),
        "options": {"expires": 50 * 60},
    },
    "billing-reconcile-estimated": {
        "task": "billing.tasks.reconcile_estimated",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "billing-recover-attempts": {
        "task": "billing.tasks.recover_attempts",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    "billing-release-expired-holds": {
        "task": "billing.tasks.release_expired_holds",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "billing-budget-alerts": {
        "task": "billing.tasks.budget_alerts",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # OpenRouter's usage_daily tells only of the current UTC day (crontab is UTC: Celery's default), so the
    # books are checked through the day, off the minute it resets, and once more just before it does.
    "billing-books-balance": {
        "task": "billing.tasks.books_balance",
        "schedule": crontab(minute="7-59/15"),
        "options": {"expires": 10 * 60},
    },
    "billing-books-balance-day-end": {
        "task": "billing.tasks.books_balance",
        "schedule": crontab(hour=23, minute=58),
        "options": {"expires": 60},
    },
    "console-flag-spend-anomalies": {
        "task": "console.tasks.flag_spend_anomalies",
        "schedule": crontab(minute=17),
        "options": {"expires": 50 * 60},
    },
    "chat-sweep-orphaned-replies": {
        "task": "chat.tasks.sweep_orphaned_replies",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # A job whose worker died (its line claims lapsed) or whose task was lost is picked up again.
    "batches-resume-stalled": {
        "task": "batches.tasks.resume_stalled",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}

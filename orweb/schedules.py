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
        "schedule": 180.0,
        "options": {"expires": 170},
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
    "chat-sweep-orphaned-replies": {
        "task": "chat.tasks.sweep_orphaned_replies",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}

"""The Celery app; the beat schedule lives in one place, here."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")

app = Celery("orweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    "catalog-sync-models": {
        "task": "catalog.tasks.sync_models",
        "schedule": crontab(minute=7),
        "options": {"expires": 50 * 60},
    },
}
app.conf.beat_schedule["billing-reconcile-estimated"] = {
    "task": "billing.tasks.reconcile_estimated",
    "schedule": 180.0,
    "options": {"expires": 170},
}
app.conf.beat_schedule["billing-release-expired-holds"] = {
    "task": "billing.tasks.release_expired_holds",
    "schedule": 60.0,
    "options": {"expires": 55},
}

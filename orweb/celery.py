"""The Celery app. Configuration comes from Django settings (CELERY_*), lazily: importing this module
must not load settings, so tools like `python -m orweb.devstack` work without any environment."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")

app = Celery("orweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def recover_on_start(sender: object = None, **kwargs: object) -> None:
    """A worker that starts (maybe in place of one killed with tasks in hand) first sweeps what may be left:
    estimated costs to reconcile, journals of dead processes to settle, batch jobs whose worker died. Beat
    repeats each every minute or less."""
    app.send_task("billing.tasks.reconcile_estimated")
    app.send_task("billing.tasks.recover_attempts")
    app.send_task("batches.tasks.resume_stalled")

"""The Celery app. Configuration comes from Django settings (CELERY_*), lazily: importing this module
must not load settings, so tools like `python -m orweb.devstack` work without any environment."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")

app = Celery("orweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

"""orweb Django project."""

from orweb.celery import app as celery_app

__all__ = ["celery_app"]

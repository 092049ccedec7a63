"""Celery tasks of batches: thin wrappers; the work is in batches.runner.

`run_job` runs on the "batches" queue (settings.CELERY_TASK_ROUTES), acknowledged late and given back if
its worker dies: a second delivery of the same job is harmless (one run holds a job's lease at a time, and
lines are claimed and settled atomically)."""

from __future__ import annotations

from celery import shared_task

from batches import runner


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> None:
    runner.run_job(job_id)


@shared_task(expires=55)
def resume_stalled() -> int:
    return runner.resume_stalled()

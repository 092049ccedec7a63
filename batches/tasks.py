"""Celery tasks of batches: thin wrappers; the work is in batches.runner.

`run_job` runs on the "batches" queue (settings.CELERY_TASK_ROUTES), acknowledged late and given back if
its worker dies: a second delivery of the same job is harmless (one run holds a job's lease at a time, and
lines are claimed and settled atomically). `job_ended`, `deliver_webhook` and `email_owner` tell the owner
that a job ended (`batches.notices`: once each, however often they are delivered)."""

from __future__ import annotations

from celery import shared_task

from batches import economy, notices, runner


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> None:
    runner.run_job(job_id)


@shared_task(expires=55)
def resume_stalled() -> int:
    return runner.resume_stalled()


@shared_task(acks_late=True, ignore_result=True)
def job_ended(job_id: str) -> None:
    """Start the webhook's tries (each a task of its own, so waits hold no worker) and the owner's e-mail."""
    deliver_webhook.delay(job_id)
    email_owner.delay(job_id)


# A mail server that is away may be back later (smtplib's errors are OSErrors): tried again with growing
# waits; the e-mail still goes once.
@shared_task(acks_late=True, ignore_result=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def email_owner(job_id: str) -> None:
    notices.email_owner(job_id)


@shared_task(acks_late=True, ignore_result=True)
def deliver_webhook(job_id: str) -> None:
    wait = notices.deliver_webhook(job_id)
    if wait is not None:
        deliver_webhook.apply_async(args=[job_id], countdown=wait)


@shared_task(acks_late=True, ignore_result=True)
def economy_step(job_id: str) -> None:
    """Submit or poll an economy job (`batches.economy`), coming back while its batch is upstream."""
    wait = economy.step(job_id)
    if wait is not None:
        economy_step.apply_async(args=[job_id], countdown=wait, queue="batches")

"""Telling a job's owner that it ended: one e-mail, and a signed POST to the job's webhook if it has one.

Both are sent by Celery tasks after the job's end is committed (`jobs._close` enqueues them by name), each
guarded by a conditional update so a redelivered task, or two workers, never send either twice: the
e-mail is marked sent before it goes (and unmarked if sending fails), and each webhook try is claimed by
its number. The webhook body is the job's OpenAI `batch` object (as `GET /v1/batches/{id}` answers),
signed under ORWEB_BATCH_WEBHOOK_SECRET as orweb.webhooks describes (the delivery id is the job's id), and
tried at most ORWEB_BATCH_WEBHOOK_TRIES times in all; the last error is kept on the job and shown on its page.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from batches.api import batch_json
from batches.models import BatchJob
from orweb import webhooks
from orweb.money import format_usd

log = logging.getLogger("orweb.batches")


class BadWebhook(ValueError):
    """A webhook URL orweb won't call."""


def check_webhook_url(url: str) -> str:
    """The URL if orweb may POST to it: http(s), webhooks configured, and (unless allowed) not an address
    on this machine or a private network, which a user could otherwise reach through orweb."""
    if not settings.ORWEB_BATCH_WEBHOOK_SECRET:
        raise BadWebhook("Webhooks are off on this server (an admin sets ORWEB_BATCH_WEBHOOK_SECRET).")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadWebhook("A webhook must be an http:// or https:// URL.")
    if not settings.ORWEB_BATCH_WEBHOOK_ALLOW_PRIVATE:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
        except OSError as error:
            raise BadWebhook(f"The webhook's host {parts.hostname} can't be found.") from error
        if any(not ipaddress.ip_address(address.split("%")[0]).is_global for address in addresses):
            raise BadWebhook("A webhook can't point at this server or a private network.")
    return url


def email_owner(job_id: str) -> bool:
    """E-mail the job's owner that it ended, once; True if this call sent it."""
    job = BatchJob.objects.filter(pk=job_id).select_related("user").first()
    if job is None or not job.is_finished or not job.user.email:
        return False
    if not BatchJob.objects.filter(pk=job_id, emailed_at__isnull=True).update(emailed_at=timezone.now()):
        return False  # sent already, or being sent by another worker
    try:
        send_mail(*_message(job), None, [job.user.email])
    except Exception:
        BatchJob.objects.filter(pk=job_id).update(emailed_at=None)
        raise
    return True


def _message(job: BatchJob) -> tuple[str, str]:
    name = job.input_file.filename
    ended = job.get_status_display().lower().replace("_", " ")
    subject = f"orweb: your batch {name} {ended}"
    body = (
        f"Your batch job {job.pk} ({name}) {ended}.\n"
        f"Lines: {job.completed} done, {job.failed} failed, {job.invalid} invalid, of {job.total}.\n"
        f"Cost: {format_usd(job.cost)}.\n"
        + (f"Reason: {job.reason}\n" if job.reason else "")
        + f"\nResults: {settings.ORWEB_SITE_URL}{reverse('batches:job', args=[job.pk])}\n"
    )
    return subject, body


def deliver_webhook(job_id: str) -> float | None:
    """One try at POSTing the job's end to its webhook. Seconds to wait before the next try, or None when
    there is nothing more to do (delivered, given up, no webhook, or another worker has this try)."""
    job = BatchJob.objects.filter(pk=job_id).first()
    if job is None or not job.webhook_url or not job.is_finished or job.webhook_delivered_at:
        return None
    tries = job.webhook_tries
    if tries >= settings.ORWEB_BATCH_WEBHOOK_TRIES:
        return None
    if not BatchJob.objects.filter(pk=job_id, webhook_tries=tries, webhook_delivered_at__isnull=True).update(
        webhook_tries=F("webhook_tries") + 1
    ):
        return None  # another worker took this try
    error = _post(job)
    if error is None:
        BatchJob.objects.filter(pk=job_id).update(webhook_delivered_at=timezone.now(), webhook_error="")
        return None
    BatchJob.objects.filter(pk=job_id).update(webhook_error=error[:300])
    log.warning("batch %s: webhook try %d failed: %s", job_id, tries + 1, error)
    if tries + 1 >= settings.ORWEB_BATCH_WEBHOOK_TRIES:
        return None
    return webhooks.wait_after(tries + 1)


def _post(job: BatchJob) -> str | None:
    """POST the job's `batch` object; None when the receiver answered 2xx, else what went wrong."""
    try:
        check_webhook_url(job.webhook_url)
    except BadWebhook as error:
        return str(error)
    body = json.dumps({"type": "batch.ended", "data": batch_json(job)}, separators=(",", ":")).encode()
    return webhooks.post(job.webhook_url, body, secret=settings.ORWEB_BATCH_WEBHOOK_SECRET, delivery=job.pk)

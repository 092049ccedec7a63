"""batches.notices: a job's end e-mailed to its owner once, and POSTed to its webhook signed, retried with
growing waits a bounded number of times, delivered once — against a real HTTP server the test runs."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from batches import formats, jobs, notices, tasks
from batches.models import BatchJob
from orweb import webhooks
from orweb.celery import app as celery_app
from tests.helpers.servers import WebhookReceiver

pytestmark = pytest.mark.django_db
SECRET = "whsec-test-secret"
MINI = "openai/gpt-4o-mini"


@pytest.fixture
def receiver(settings) -> Iterator[WebhookReceiver]:
    settings.ORWEB_BATCH_WEBHOOK_SECRET = SECRET
    settings.ORWEB_BATCH_WEBHOOK_ALLOW_PRIVATE = True
    settings.ORWEB_BATCH_WEBHOOK_TRIES = 4
    found = WebhookReceiver()
    yield found
    found.stop()


@pytest.fixture(autouse=True)
def _batch_dir(settings, tmp_path):
    settings.ORWEB_BATCH_DIR = str(tmp_path / "batches")


def ended_job(user, webhook_url: str = "") -> BatchJob:
    file = formats.store_upload(user, SimpleUploadedFile("in.jsonl", json.dumps({"prompt": "hi"}).encode() + b"\n"))
    job = jobs.create_job(user, file, origin="web", default_model=MINI, webhook_url=webhook_url)
    jobs.cancel(job)
    job.refresh_from_db()
    assert job.status == "cancelled"
    return job


def verified(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Orweb-Signature"], expected)


def test_the_signature_is_hmac_sha256_of_the_body_under_the_secret(settings):
    settings.ORWEB_BATCH_WEBHOOK_SECRET = SECRET
    body = b'{"type":"batch.ended"}'
    assert verified({"X-Orweb-Signature": webhooks.sign(body, SECRET)}, body)
    assert not verified({"X-Orweb-Signature": webhooks.sign(body, "another secret")}, body)


def test_a_webhook_is_retried_with_growing_waits_until_it_answers_then_never_again(owner, receiver):
    receiver.statuses = [500, 503]
    job = ended_job(owner, receiver.url)
    assert [notices.deliver_webhook(job.pk) for _ in range(3)] == [5.0, 10.0, None]
    assert notices.deliver_webhook(job.pk) is None  # a redelivered task: nothing is sent again
    assert len(receiver.received) == 3
    assert all(verified(headers, body) for headers, body in receiver.received)
    assert {body for _, body in receiver.received} == {receiver.received[0][1]}
    headers, body = receiver.received[-1]
    sent = json.loads(body)
    assert headers["X-Orweb-Delivery"] == job.pk
    assert sent["type"] == "batch.ended" and sent["data"]["id"] == job.pk and sent["data"]["status"] == "cancelled"
    job.refresh_from_db()
    assert job.webhook_delivered_at and job.webhook_tries == 3 and job.webhook_error == ""


def test_a_webhook_that_keeps_failing_is_given_up_after_the_last_try(owner, receiver):
    receiver.statuses = [500] * 10
    job = ended_job(owner, receiver.url)
    waits = [notices.deliver_webhook(job.pk) for _ in range(6)]
    assert waits == [5.0, 10.0, 20.0, None, None, None]
    assert len(receiver.received) == 4
    job.refresh_from_db()
    assert job.webhook_delivered_at is None and job.webhook_tries == 4
    assert job.webhook_error == "The webhook answered 500."


def test_the_end_of_a_job_mails_its_owner_once_and_calls_its_webhook_through_the_tasks(owner, receiver, settings):
    owner.email = "olivia@example.com"
    owner.save()
    receiver.statuses = [502]
    job = ended_job(owner, receiver.url)
    celery_app.conf.task_always_eager = True
    try:
        tasks.job_ended(job.pk)
        tasks.job_ended(job.pk)  # delivered twice: still one e-mail, one successful POST
    finally:
        celery_app.conf.task_always_eager = False
    [message] = mail.outbox
    assert message.to == ["olivia@example.com"] and "in.jsonl" in message.subject and "cancelled" in message.subject
    assert reverse("batches:job", args=[job.pk]) in message.body
    assert [json.loads(body)["data"]["id"] for _, body in receiver.received] == [job.pk, job.pk]
    job.refresh_from_db()
    assert job.emailed_at and job.webhook_delivered_at and job.webhook_tries == 2


def test_a_jobs_end_enqueues_the_notice_after_commit(owner, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(jobs.current_app, "send_task", lambda name, args: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        job = ended_job(owner)
    assert sent == [("batches.tasks.job_ended", [job.pk])]


def test_webhooks_to_this_machine_or_a_private_network_are_refused(settings):
    settings.ORWEB_BATCH_WEBHOOK_SECRET = SECRET
    for url in ("http://127.0.0.1:9000/x", "http://10.1.2.3/x", "http://[::1]/x", "http://localhost/x"):
        with pytest.raises(notices.BadWebhook, match="private network"):
            notices.check_webhook_url(url)
    with pytest.raises(notices.BadWebhook, match="http"):
        notices.check_webhook_url("ftp://example.com/x")
    settings.ORWEB_BATCH_WEBHOOK_SECRET = ""
    with pytest.raises(notices.BadWebhook, match="off on this server"):
        notices.check_webhook_url("https://example.com/x")


def test_the_upload_form_refuses_a_webhook_it_wont_call(owner_client, catalog, settings):
    settings.ORWEB_BATCH_WEBHOOK_SECRET = SECRET
    data = {"file": SimpleUploadedFile("in.jsonl", b'{"prompt": "hi", "model": "openai/gpt-4o-mini"}\n')}
    response = owner_client.post(reverse("batches:upload"), {**data, "webhook_url": "http://127.0.0.1:1/hook"})
    assert response.status_code == 400
    assert "private network" in response.content.decode()
    assert not BatchJob.objects.exists()


def test_an_email_the_mail_server_refused_is_tried_again_and_sent_once(owner, monkeypatch):
    owner.email = "olivia@example.com"
    owner.save()
    job = ended_job(owner)
    send_mail = notices.send_mail
    refusals = []

    def refused_once(*args, **kwargs):
        if not refusals:
            refusals.append(args)
            raise ConnectionRefusedError("the mail server is away")
        return send_mail(*args, **kwargs)

    monkeypatch.setattr(notices, "send_mail", refused_once)
    celery_app.conf.task_always_eager = True
    try:
        tasks.email_owner.delay(job.pk)  # refused, then tried again by the task itself
    finally:
        celery_app.conf.task_always_eager = False
    assert len(refusals) == 1 and len(mail.outbox) == 1
    job.refresh_from_db()
    assert job.emailed_at
    assert not notices.email_owner(job.pk) and len(mail.outbox) == 1

"""Who may open, change and download a batch job, from all four sides.

A member's batch jobs are theirs alone: a teammate, an outsider and staff alike get 404 for its page, its
downloads and every change, as if it did not exist. Staff have their own page listing every job's owner,
size, status and cost (everyone else gets 403), and it never shows what a file says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from batches import formats, jobs
from batches.models import BatchJob, BatchLine
from tests.helpers.personas import SIDES, streamed_body

pytestmark = pytest.mark.django_db

OWNER_ONLY = {"owner": 200, "teammate": 404, "outsider": 404, "staff": 404}
STAFF_ONLY = {"owner": 403, "teammate": 403, "outsider": 403, "staff": 200}
NOT_THE_OWNER = [side for side in SIDES if side != "owner"]
PROMPT = "Draft the merger letter to Initech"
ANSWER = "Dear Initech, the vault code is 4-8-15-16"
DOWNLOADS = ("results", "errors", "csv", "report")
ACTIONS = ("run", "pause", "resume", "cancel")


@pytest.fixture(autouse=True)
def _batch_dir(tmp_path, settings) -> None:
    """Uploaded files go to this test's own folder."""
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"


@dataclass
class OwnedBatch:
    job: BatchJob
    filename: str = "initech-merger.jsonl"


@pytest.fixture
def owned_batch(owner, catalog) -> OwnedBatch:
    """The owner's job, ready to run: one line already answered (so every download has something), one bad."""
    text = json.dumps({"custom_id": "letter", "prompt": PROMPT}) + "\n{broken\n"
    stored = formats.store_upload(owner, SimpleUploadedFile("initech-merger.jsonl", text.encode()))
    job = jobs.create_job(owner, stored, origin=BatchJob.Origin.WEB, default_model="openai/gpt-4o-mini")
    body = {"id": "gen-1", "object": "chat.completion", "choices": [{"message": {"content": ANSWER}}], "usage": {}}
    job.lines.filter(number=1).update(status=BatchLine.Status.DONE, response=body, cost=Decimal("0.01"))
    BatchJob.objects.filter(pk=job.pk).update(completed=1, cost=Decimal("0.01"))
    return OwnedBatch(job)


def test_a_batch_job_page_shows_only_to_its_owner(side, owned_batch, side_client):
    response = side_client.get(reverse("batches:job", args=[owned_batch.job.id]))

    assert response.status_code == OWNER_ONLY[side]
    assert (owned_batch.filename in response.content.decode()) == (side == "owner")


def test_the_live_partial_shows_only_to_its_owner(side, owned_batch, side_client):
    response = side_client.get(reverse("batches:job", args=[owned_batch.job.id]), headers={"HX-Request": "true"})

    assert response.status_code == OWNER_ONLY[side]


def test_a_batch_jobs_downloads_are_only_for_its_owner(side, owned_batch, side_client):
    for name in DOWNLOADS:
        response = side_client.get(reverse(f"batches:{name}", args=[owned_batch.job.id]))
        assert response.status_code == OWNER_ONLY[side], name
        if side == "owner":
            assert response["Content-Disposition"].startswith("attachment;"), name
    results = side_client.get(reverse("batches:results", args=[owned_batch.job.id]))
    body = streamed_body(results) if results.streaming else results.content
    assert (ANSWER in body.decode()) == (side == "owner")


def test_the_batch_list_shows_only_the_users_own_jobs(side, owned_batch, side_client):
    response = side_client.get(reverse("batches:index"))

    assert response.status_code == 200
    assert (owned_batch.filename in response.content.decode()) == (side == "owner")


@pytest.mark.parametrize("side", NOT_THE_OWNER)
def test_nobody_else_runs_pauses_or_cancels_a_batch_job(side, owned_batch, side_client):
    for action in ACTIONS:
        response = side_client.post(reverse(f"batches:{action}", args=[owned_batch.job.id]))
        assert response.status_code == 404, action

    owned_batch.job.refresh_from_db()
    assert owned_batch.job.status == BatchJob.Status.READY


def test_the_owner_runs_their_own_job(owned_batch, owner_client):
    response = owner_client.post(reverse("batches:run", args=[owned_batch.job.id]))

    assert response.status_code == 302
    owned_batch.job.refresh_from_db()
    assert owned_batch.job.status == BatchJob.Status.IN_PROGRESS


def test_the_all_jobs_page_is_for_staff_and_never_shows_content(side, owned_batch, side_client):
    response = side_client.get(reverse("batches:staff"))

    assert response.status_code == STAFF_ONLY[side]
    if side == "staff":
        page = response.content.decode()
        assert "olivia" in page and owned_batch.job.id in page and "$0.01" in page
        assert owned_batch.filename not in page and PROMPT not in page and ANSWER not in page


def test_anonymous_visitors_are_sent_to_sign_in_for_every_batch_page(client, owned_batch):
    job_id = owned_batch.job.id
    urls = [reverse("batches:index"), reverse("batches:staff"), reverse("batches:job", args=[job_id])]
    urls += [reverse(f"batches:{name}", args=[job_id]) for name in DOWNLOADS]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
    for action in (*ACTIONS, "upload"):
        url = reverse(f"batches:{action}", args=[] if action == "upload" else [job_id])
        response = client.post(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url

    owned_batch.job.refresh_from_db()
    assert owned_batch.job.status == BatchJob.Status.READY

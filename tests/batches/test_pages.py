"""The batch pages with Django's test client: upload, validation report, estimate, actions, live progress,
downloads and the staff list. Who may see what from every side is in tests/access/test_batches_access.py."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from batches.models import BatchJob, BatchLine
from orweb.money import format_usd
from tests.helpers.personas import streamed_body

pytestmark = pytest.mark.django_db

MODEL = "openai/gpt-4o-mini"


@pytest.fixture(autouse=True)
def _batch_dir(tmp_path, settings) -> None:
    """Uploaded files go to this test's own folder."""
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"


def jsonl(*rows: object) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def upload(client: Client, text: str | bytes, name: str = "prompts.jsonl", **fields: object):
    data = text.encode() if isinstance(text, str) else text
    return client.post(reverse("batches:upload"), {"file": SimpleUploadedFile(name, data), **fields})


def the_job() -> BatchJob:
    return BatchJob.objects.get()


GOOD = jsonl({"custom_id": "a", "prompt": "Say hi"}, {"custom_id": "b", "prompt": "Say bye"})
WITH_BAD = jsonl({"custom_id": "a", "prompt": "Say hi"}, "{not json", {"custom_id": "c", "prompt": "Again"})


def test_a_new_user_sees_the_upload_form_and_an_empty_state(owner_client, catalog):
    page = owner_client.get(reverse("batches:index")).content.decode()

    assert 'enctype="multipart/form-data"' in page
    assert "No batches yet" in page
    assert f'<option value="{MODEL}"' in page


def test_an_upload_shows_the_bad_lines_by_number_and_offers_the_valid_ones(owner_client, catalog):
    response = upload(owner_client, WITH_BAD, model=MODEL)

    job = the_job()
    assert response.status_code == 302 and response["Location"] == reverse("batches:job", args=[job.id])
    page = owner_client.get(response["Location"]).content.decode()
    assert "1 line can" in page
    assert '<td class="num">2</td>' in page
    assert "Run the 2 valid lines" in page
    assert "Download the report (CSV)" in page


def test_the_estimate_is_a_range_that_says_whether_it_fits_the_budget(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL)
    job = the_job()

    page = owner_client.get(reverse("batches:job", args=[job.id])).content.decode()

    assert job.estimate_low < job.estimate_high
    assert f"{format_usd(job.estimate_low)} – {format_usd(job.estimate_high)}" in page
    assert "Fits your remaining budget" in page


def test_an_estimate_over_the_budget_says_it_may_not_fit(owner_client, owner, catalog):
    from billing.budgets import set_budget

    set_budget(user=owner, amount=Decimal("0.0000001"))
    upload(owner_client, GOOD, model=MODEL, max_tokens="16000")

    page = owner_client.get(reverse("batches:job", args=[the_job().id])).content.decode()

    assert "May not fit your remaining budget" in page


def test_a_csv_with_a_prompt_column_becomes_a_job(owner_client, catalog):
    upload(owner_client, "prompt,custom_id\nSay hi,first\nSay bye,second\n", name="prompts.csv", model=MODEL)

    job = the_job()
    assert (job.total, job.valid, job.status) == (2, 2, BatchJob.Status.READY)
    assert list(job.lines.values_list("custom_id", flat=True)) == ["first", "second"]


def test_the_defaults_chosen_on_the_form_reach_the_job(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL, temperature="0", max_tokens="50", cache_across_jobs="1")

    job = the_job()
    assert (job.default_model, job.cache_across_jobs) == (MODEL, True)
    assert job.default_params == {"temperature": 0.0, "max_tokens": 50}


def test_fix_and_reupload_keeps_the_jobs_defaults(owner_client, catalog):
    upload(owner_client, WITH_BAD, model=MODEL, temperature="0", max_tokens="50")
    page = owner_client.get(reverse("batches:job", args=[the_job().id])).content.decode()

    link = re.search(r'href="([^"]*)#upload">Fix and re-upload', page).group(1).replace("&amp;", "&")
    form = owner_client.get(link).content.decode()

    assert f'<option value="{MODEL}" selected>' in form
    assert 'name="temperature" min="0" max="2" step="0.05" value="0.0"' in form and 'value="50"' in form


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("prompts.txt", GOOD, "Upload a .jsonl or .csv file."),
        ("prompts.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00binary", "This is a binary file"),
        ("prompts.jsonl", "<html><script>alert(1)</script></html>\n", "This is HTML, not JSONL or CSV"),
        ("prompts.jsonl", b"\xff\xfe bad encoding \xff\n", "The file is not UTF-8 text"),
        ("prompts.csv", "question\nWhy?\n", "The CSV has no &#x27;prompt&#x27; column"),
    ],
)
def test_a_file_that_is_not_a_batch_is_refused_with_a_clear_message(owner_client, catalog, name, content, says):
    response = upload(owner_client, content, name=name, model=MODEL)

    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="file-error"' in page and says in page
    assert not BatchJob.objects.exists()


def test_the_validation_report_downloads_as_an_attachment(owner_client, catalog):
    upload(owner_client, WITH_BAD, model=MODEL)

    response = owner_client.get(reverse("batches:report", args=[the_job().id]))

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"].startswith("text/csv")
    rows = streamed_body(response).decode().splitlines()
    assert rows[0] == "line,custom_id,problem" and rows[1].startswith("2,line-2,Not valid JSON") and len(rows) == 2


def test_run_starts_the_valid_lines(owner_client, catalog):
    upload(owner_client, WITH_BAD, model=MODEL)
    job = the_job()

    response = owner_client.post(reverse("batches:run", args=[job.id]))

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == BatchJob.Status.IN_PROGRESS
    assert job.lines.filter(number=2, status=BatchLine.Status.INVALID).exists()


def test_a_job_is_never_changed_over_get(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL)
    job = the_job()

    for action in ("run", "pause", "resume", "cancel"):
        assert owner_client.get(reverse(f"batches:{action}", args=[job.id])).status_code == 405

    job.refresh_from_db()
    assert job.status == BatchJob.Status.READY


def test_a_change_without_the_csrf_token_is_refused(owner, catalog):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    upload_page = client.get(reverse("batches:index"))
    token = upload_page.cookies["csrftoken"].value
    client.post(
        reverse("batches:upload"),
        {"file": SimpleUploadedFile("p.jsonl", GOOD.encode()), "model": MODEL, "csrfmiddlewaretoken": token},
    )
    job = the_job()

    assert client.post(reverse("batches:run", args=[job.id])).status_code == 403
    assert (
        client.post(reverse("batches:upload"), {"file": SimpleUploadedFile("q.jsonl", GOOD.encode())}).status_code
        == 403
    )
    job.refresh_from_db()
    assert job.status == BatchJob.Status.READY and BatchJob.objects.count() == 1


def test_pause_resume_and_cancel_move_a_running_job(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL)
    job = the_job()
    owner_client.post(reverse("batches:run", args=[job.id]))

    statuses = []
    for action in ("pause", "resume", "cancel"):
        owner_client.post(reverse(f"batches:{action}", args=[job.id]))
        job.refresh_from_db()
        statuses.append(job.status)

    assert statuses[:2] == [BatchJob.Status.PAUSED, BatchJob.Status.IN_PROGRESS]
    assert statuses[2] in (BatchJob.Status.CANCELLING, BatchJob.Status.CANCELLED)


def test_a_paused_job_says_why_offers_resume_and_keeps_polling_for_a_resume_elsewhere(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL)
    job = the_job()
    BatchJob.objects.filter(pk=job.pk).update(status=BatchJob.Status.PAUSED, reason="Your monthly budget is spent.")

    page = owner_client.get(reverse("batches:job", args=[job.id])).content.decode()

    assert "Your monthly budget is spent." in page
    assert reverse("batches:resume", args=[job.id]) in page and reverse("batches:pause", args=[job.id]) not in page
    assert 'hx-trigger="every 5s"' in page


def test_an_impossible_change_is_explained_not_done(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL)
    job = the_job()

    response = owner_client.post(reverse("batches:resume", args=[job.id]), follow=True)

    assert response.status_code == 200
    assert 'class="flash-error"' in response.content.decode()
    job.refresh_from_db()
    assert job.status == BatchJob.Status.READY


def _running_with_one_done(job: BatchJob) -> None:
    """Line 1 answered a minute into the run, line 2 still to do, as a worker leaves it mid-job."""
    now = timezone.now()
    BatchJob.objects.filter(pk=job.pk).update(
        status=BatchJob.Status.IN_PROGRESS, completed=1, cost=Decimal("0.25"), started_at=now - timedelta(minutes=1)
    )
    body = {"id": "gen-1", "object": "chat.completion", "choices": [{"message": {"content": "hi"}}], "usage": {}}
    job.lines.filter(number=1).update(
        status=BatchLine.Status.DONE, response=body, cost=Decimal("0.25"), generation_id="gen-1", finished_at=now
    )


def test_the_live_partial_polls_while_the_job_runs_and_stops_when_it_ends(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL)
    job = the_job()
    _running_with_one_done(job)
    url = reverse("batches:job", args=[job.id])

    running = owner_client.get(url, headers={"HX-Request": "true"}).content.decode()
    BatchJob.objects.filter(pk=job.pk).update(status=BatchJob.Status.COMPLETED)
    finished = owner_client.get(url, headers={"HX-Request": "true"}).content.decode()

    assert running.lstrip().startswith('<section id="live"') and "<html" not in running
    assert 'hx-trigger="every 1s"' in running and "$0.25" in running
    assert "1/min" in running and "1 min" in running
    assert "what is done so far" in running and reverse("batches:results", args=[job.id]) in running
    assert 'hx-trigger="every 1s"' not in finished and "Completed" in finished


def test_results_download_as_attachments_never_inline(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL)
    job = the_job()
    _running_with_one_done(job)

    for name in ("results", "errors", "csv"):
        response = owner_client.get(reverse(f"batches:{name}", args=[job.id]))
        assert response.status_code == 200, name
        assert response["Content-Disposition"].startswith("attachment;"), name
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "html" not in response["Content-Type"]
    results = streamed_body(owner_client.get(reverse("batches:results", args=[job.id])))
    assert [json.loads(line)["custom_id"] for line in results.splitlines()] == ["a"]


def test_the_job_list_shows_status_progress_and_cost(owner_client, catalog):
    upload(owner_client, GOOD, name="weekly.jsonl", model=MODEL)
    job = the_job()
    _running_with_one_done(job)

    page = owner_client.get(reverse("batches:index")).content.decode()
    partial = owner_client.get(reverse("batches:index"), headers={"HX-Request": "true"}).content.decode()

    assert "weekly.jsonl" in page and "In progress" in page and "$0.25" in page and "1 / 2" in page
    assert partial.lstrip().startswith('<section id="jobs"') and 'hx-trigger="every 2s"' in partial


def test_staff_see_every_jobs_owner_size_status_and_cost_not_its_content(owner_client, staff_client, catalog):
    upload(owner_client, GOOD, name="secret-plans.jsonl", model=MODEL)
    _running_with_one_done(the_job())

    page = staff_client.get(reverse("batches:staff")).content.decode()

    assert "olivia" in page and "In progress" in page and "$0.25" in page
    assert "secret-plans" not in page and "Say hi" not in page


def test_a_poll_after_the_session_ended_says_signed_out_instead_of_a_broken_fragment(owner_client, catalog):
    upload(owner_client, GOOD, model=MODEL)
    job = the_job()
    _running_with_one_done(job)
    owner_client.logout()
    for url, region in ((reverse("batches:job", args=[job.id]), "live"), (reverse("batches:index"), "jobs")):
        poll = owner_client.get(url, headers={"HX-Request": "true"})
        fragment = poll.content.decode()
        assert poll.status_code == 200 and fragment.lstrip().startswith(f'<section id="{region}"')
        assert "You were signed out" in fragment and "hx-trigger" not in fragment and "<html" not in fragment
        assert f"{reverse('login')}?next={quote(url, safe='')}" in fragment
        page = owner_client.get(url)
        assert page.status_code == 302 and page["Location"].startswith(reverse("login"))

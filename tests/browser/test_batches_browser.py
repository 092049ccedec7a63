"""A batch job in Chromium, end to end: upload → validation report → estimate → run (a real Celery worker on
the "batches" queue, the simulator upstream) → live progress → download. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from playwright.sync_api import expect

from batches import formats, jobs
from batches.models import BatchJob
from orweb.celery import app as celery_app
from orweb.devstack import ROOT
from tests.conftest import SIM_KEY, database_url

MODEL = "openai/gpt-4o-mini"
GOOD_LINES = 24
RUN_TIMEOUT_MS = 90_000


@pytest.fixture
def batch_dir(tmp_path: Path, settings) -> Path:
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"
    return settings.ORWEB_BATCH_DIR


@pytest.fixture
def worker(live_app, simulator, settings, batch_dir) -> Iterator[subprocess.Popen]:
    """A Celery worker process as production runs it (queues celery and batches), on the test database."""
    celery_app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "OPENROUTER_BASE_URL": simulator.base_url,
        "OPENROUTER_API_KEY": SIM_KEY,
        "ORWEB_BATCH_DIR": str(batch_dir),
    }
    command = [sys.executable, "-m", "celery", "-A", "orweb", "worker", "-Q", "celery,batches", "-l", "warning"]
    command += ["-P", "solo", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    yield process
    process.terminate()
    process.wait(20)


def batch_file(folder: Path) -> Path:
    """GOOD_LINES simple lines, one the upstream refuses (a failed line), and two the validation rejects."""
    rows = [json.dumps({"custom_id": f"q{n:02}", "prompt": f"Name a colour, take {n}"}) for n in range(GOOD_LINES)]
    rows[5] = json.dumps({"custom_id": "q05", "prompt": "Refuse this one [[sim status=400]]"})
    rows.insert(10, '{"custom_id": "broken", "prompt": ')
    rows.insert(15, json.dumps({"custom_id": "q03", "prompt": "A duplicate id"}))
    path = folder / "colours.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_batch_from_upload_to_download(new_tab, live_app, simulator, worker, owner, staff, catalog, tmp_path):
    simulator.fault(MODEL, "first_byte_delay=0.3 tokens=12")
    tab = new_tab(signed_in_as=owner)
    page = tab.page

    tab.goto("/batches/")
    expect(page.get_by_role("heading", name="No batches yet")).to_be_visible()
    tab.screenshot("batches-empty")

    page.get_by_label("File (.jsonl or .csv)").set_input_files(str(batch_file(tmp_path)))
    page.get_by_label("Default model").select_option(MODEL)
    page.get_by_role("button", name="Upload and check").click()

    report = page.locator("#report")
    expect(report.get_by_role("heading")).to_have_text("2 lines can't run")
    expect(report.locator("tbody tr")).to_have_count(2)
    expect(report.locator("tbody tr").first.locator("td").first).to_have_text("11")
    expect(page.get_by_test_id("estimate")).to_contain_text("–")
    expect(page.get_by_test_id("fits")).to_contain_text("Fits your remaining budget")
    with page.expect_download() as report_download:
        page.get_by_role("link", name="Download the report (CSV)").click()
    report_rows = Path(report_download.value.path()).read_text().splitlines()
    assert [row.split(",")[0] for row in report_rows] == ["line", "11", "16"]
    tab.screenshot("batches-report-estimate")

    page.get_by_role("button", name=f"Run the {GOOD_LINES} valid lines").click()
    expect(page.get_by_test_id("status")).to_have_text("In progress")
    tab.screenshot("batches-running")
    # From here on the page is never loaded again: only htmx's polling of the live partial can move it on.
    loads: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and loads.append(frame.url))

    expect(page.get_by_test_id("done")).not_to_have_text("0", timeout=RUN_TIMEOUT_MS)
    tab.screenshot("batches-progress")
    expect(page.get_by_test_id("status")).to_have_text("Completed", timeout=RUN_TIMEOUT_MS)
    assert loads == []
    expect(page.get_by_test_id("done")).to_have_text(str(GOOD_LINES - 1))
    expect(page.get_by_test_id("failed")).to_have_text("1")
    expect(page.get_by_test_id("remaining")).to_have_text("0")
    expect(page.locator("progress.batch-progress")).to_have_attribute("value", "100")
    expect(page.get_by_test_id("spent")).not_to_have_text("$0")
    tab.screenshot("batches-completed")

    with page.expect_download() as results_download:
        page.get_by_role("link", name="Results (JSONL)").click()
    lines = [json.loads(line) for line in Path(results_download.value.path()).read_text().splitlines()]
    expected = [f"q{n:02}" for n in range(GOOD_LINES) if n != 5]
    assert [line["custom_id"] for line in lines] == expected
    assert all(line["response"]["status_code"] == 200 for line in lines)
    with page.expect_download() as errors_download:
        page.get_by_role("link", name="Errors (JSONL)").click()
    errors = [json.loads(line) for line in Path(errors_download.value.path()).read_text().splitlines()]
    assert "q05" in [line["custom_id"] for line in errors]

    tab.goto("/batches/")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator("#jobs tbody tr").first).to_contain_text("Completed")
    tab.screenshot("batches-list")

    staff_tab = new_tab(signed_in_as=staff)
    staff_tab.goto("/batches/all/")
    expect(staff_tab.page.locator("#all-jobs tbody tr")).to_have_count(1)
    expect(staff_tab.page.locator("#all-jobs tbody tr").first).to_contain_text("olivia")
    expect(staff_tab.page.locator("#all-jobs")).not_to_contain_text("colours")
    staff_tab.screenshot("batches-staff")


def test_a_paused_job_shows_a_resume_from_elsewhere_then_says_when_the_session_ends(
    new_tab, live_app, owner, catalog, tmp_path, settings
):
    settings.ORWEB_BATCH_WEBHOOK_SECRET = "whsec-browser"
    tab = new_tab(signed_in_as=owner)
    page = tab.page
    tab.goto("/batches/")
    expect(page.get_by_label("Webhook")).to_be_visible()
    tab.screenshot("batches-form-webhook")
    rows = [json.dumps({"prompt": f"Name a colour, take {n}", "model": MODEL}) for n in range(3)]
    file = formats.store_upload(owner, SimpleUploadedFile("paused.jsonl", ("\n".join(rows) + "\n").encode()))
    job = jobs.create_job(owner, file, origin="web", webhook_url="https://example.com/hook")
    BatchJob.objects.filter(pk=job.pk).update(status=BatchJob.Status.PAUSED, reason="Paused: for lunch.")

    tab.goto(f"/batches/{job.pk}/")
    expect(page.get_by_test_id("status")).to_have_text("Paused")
    tab.screenshot("batches-paused")
    celery_app.control.purge()
    jobs.resume(BatchJob.objects.get(pk=job.pk))  # from another tab, or the API: no worker runs it here
    expect(page.get_by_test_id("status")).to_have_text("In progress")
    celery_app.control.purge()

    Session.objects.all().delete()  # the session ends while the page polls
    expect(page.get_by_test_id("signed-out")).to_contain_text("You were signed out")
    expect(page.get_by_role("link", name="Sign in again")).to_have_attribute(
        "href", f"/login/?next=%2Fbatches%2F{job.pk}%2F"
    )
    tab.screenshot("batches-signed-out")

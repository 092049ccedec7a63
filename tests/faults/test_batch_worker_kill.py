"""kill -9 of the Celery worker running a batch job, mid-job: a new worker finishes it. No line is lost, none
is done twice, and the ledger holds exactly what the simulator billed, by generation id (the calls the dead
worker had in flight included: they were generated, so they are paid for, once)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from batches import formats, jobs, runner
from batches.models import BatchJob, BatchLine
from billing import attempts
from billing.models import LedgerEntry
from tests.faults.conftest import wait_until
from tests.helpers.billing import assert_ledger_matches_simulator, wait_for_reconciled

pytestmark = pytest.mark.django_db(transaction=True)

CLAIM_SECONDS = 3
LINES = 60


@pytest.fixture
def start_batch_worker(start_worker, settings, tmp_path) -> Callable[[], subprocess.Popen]:
    settings.ORWEB_BATCH_DIR = str(tmp_path / "batches")
    settings.ORWEB_BATCH_CLAIM_SECONDS = CLAIM_SECONDS
    return lambda: start_worker("celery,batches", ORWEB_BATCH_CLAIM_SECONDS=str(CLAIM_SECONDS))


def _swept() -> bool:
    """Beat's sweep, about once a second here."""
    if time.monotonic() - SWEPT[0] > 1:
        SWEPT[0] = time.monotonic()
        runner.resume_stalled()
    return True


SWEPT = [0.0]


def _in_ledger(simulator) -> bool:
    return set(simulator.billed()) <= set(LedgerEntry.objects.values_list("generation_id", flat=True))


def _count(job: BatchJob, status: str) -> int:
    return BatchLine.objects.filter(job=job, status=status).count()


def test_a_job_whose_worker_is_killed_is_finished_by_the_next_exactly_once(
    start_batch_worker, simulator, catalog, owner, journal_dir
):
    first = start_batch_worker()
    rows = [
        json.dumps({"prompt": f"line {n} [[sim ttft=0.3 tokens=20]]", "model": "openai/gpt-4o-mini"})
        for n in range(LINES)
    ]
    file = formats.store_upload(owner, SimpleUploadedFile("in.jsonl", ("\n".join(rows) + "\n").encode()))
    job = jobs.create_job(owner, file, origin="api", concurrency=4)
    assert job.status == "in_progress"

    wait_until(lambda: _count(job, "done") >= 8 and _count(job, "running") > 0, 60, "the worker never got going")
    first.kill()
    first.wait(10)
    held = _count(job, "running")
    assert held > 0 and _count(job, "done") < LINES  # killed mid-job, with lines in hand

    start_batch_worker()
    # The job's second run, queued behind the first, or beat's sweep once the dead run's slot has lapsed:
    # the job goes to the new worker.
    wait_until(lambda: _swept() and BatchJob.objects.get(pk=job.pk).status == "completed", 120, "not finished")

    job.refresh_from_db()
    lines = list(BatchLine.objects.filter(job=job))
    assert [line.status for line in lines] == ["done"] * LINES and (job.completed, job.failed) == (LINES, 0)
    generations = [line.generation_id for line in lines]
    assert len(set(generations)) == LINES  # each line settled once, with its own generation
    # The dead worker's journal: what it had in flight is settled from /generation, here or by the new worker
    # (its start sweeps journals too, once the run it picked up first is done).
    dead = f"-{first.pid}-"
    wait_until(
        lambda: attempts.recover() >= 0 and not any(dead in path.name for path in journal_dir.iterdir()),
        60,
        "the dead worker's journal was never replayed",
    )
    wait_for_reconciled(timeout=60)
    # A line whose claim lapsed while its run was slow may have been asked twice: the slower call settles
    # when it ends, after the job completed.
    deadline = time.monotonic() + 30
    while not _in_ledger(simulator) and time.monotonic() < deadline:
        time.sleep(0.2)
    # The dead worker's calls whose response headers it never read (killed between the request and them):
    # nothing names their generations, so they are $0 rows that say so; on a busy machine there can be some.
    unread = LedgerEntry.objects.filter(error=f"{attempts.PROCESS_STOPPED} before an answer").count()
    assert_ledger_matches_simulator(simulator, unread=unread)
    charged = dict(LedgerEntry.objects.filter(generation_id__in=generations).values_list("generation_id", "cost"))
    assert {line.generation_id: line.cost for line in lines} == charged

"""Economy mode (batches.economy) against the simulator's Batch API: the whole job held before it is
submitted (or nothing, and the job pauses), one upstream batch with its id recorded, results settled line by
line at the price the Batch API reported, holds released; no pause once submitted; a cancelled job still
settles what arrives; a refused submission gives the holds back. Every test ends with the ledger equal to
what the simulator billed."""

from __future__ import annotations

import copy
import json
from decimal import ROUND_DOWN, Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum
from django.utils import timezone

from batches import economy, formats, jobs, runner
from batches.models import BatchJob, BatchLine
from billing.budgets import set_budget
from billing.models import BudgetPeriod, Hold, LedgerEntry
from openrouter.simulator.batch_api import BATCH_RATE
from tests.helpers.billing import assert_ledger_matches_simulator

pytestmark = pytest.mark.django_db
TEXT = "meta-llama/llama-3.1-8b-instruct"


@pytest.fixture(autouse=True)
def _batch_dir(settings, tmp_path):
    settings.ORWEB_BATCH_DIR = str(tmp_path / "batches")


@pytest.fixture
def upstream(simulator):
    simulator.configure(batch_delay=0.05)
    return simulator


def economy_job(user, prompts: list[str], *, model: str = TEXT, max_tokens: int = 100) -> BatchJob:
    rows = [{"custom_id": f"c{n}", "prompt": text} for n, text in enumerate(prompts)]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    stored = formats.store_upload(user, SimpleUploadedFile("in.jsonl", text.encode()))
    job = jobs.create_job(
        user, stored, origin="web", default_model=model, default_params={"max_tokens": max_tokens}, economy=True
    )
    return jobs.start(job)


def run_to_end(job: BatchJob) -> BatchJob:
    for _ in range(1000):
        if economy.step(job.pk) is None:
            break
    job.refresh_from_db()
    return job


def open_holds() -> Decimal:
    return Hold.objects.filter(released_at=None).aggregate(total=Sum("amount"))["total"] or Decimal(0)


def test_an_economy_job_is_held_whole_submitted_once_and_settled_line_by_line(upstream, catalog, owner):
    limit = Decimal("0.01")
    set_budget(user=owner, amount=limit)
    job = economy_job(owner, ["one", "two", "three"])
    economy.step(job.pk)
    job.refresh_from_db()
    assert (job.remote_state, job.remote_id.startswith("batch_")) == ("submitted", True)
    lines = list(BatchLine.objects.filter(job=job))
    assert {line.status for line in lines} == {"running"} and all(line.hold_id for line in lines)
    [period] = BudgetPeriod.objects.all()
    assert period.held == open_holds() > 0 and period.held + period.spent <= limit

    job = run_to_end(job)
    assert (job.status, job.completed, job.failed, job.remote_state) == ("completed", 3, 0, "settled")
    sim_model = upstream.app.state.sim.models[TEXT]
    billed = upstream.billed()
    for line in BatchLine.objects.filter(job=job):
        usage = line.response["usage"]
        list_price = usage["prompt_tokens"] * sim_model.price("prompt") + usage["completion_tokens"] * sim_model.price(
            "completion"
        )
        assert line.cost == billed[line.generation_id] == list_price * BATCH_RATE
    entries = LedgerEntry.objects.all()
    assert {(e.source, e.cost_source) for e in entries} == {("batch", "reported")}
    assert job.cost == sum(billed.values())
    period.refresh_from_db()
    assert (period.held, period.spent) == (0, job.cost)
    assert_ledger_matches_simulator(upstream)


def test_lines_are_held_at_the_batch_apis_price_with_a_margin_not_at_list_price(upstream, catalog, owner):
    job = economy_job(owner, [f"line {n}" for n in range(40)], max_tokens=2000)
    # A budget (kept to 4 places) the list-price worst case wouldn't fit, and the economy hold does.
    limit = (job.estimate_high * Decimal("0.8")).quantize(Decimal("0.0001"), ROUND_DOWN)
    set_budget(user=owner, amount=limit)
    economy.step(job.pk)
    job.refresh_from_db()
    assert job.status == "in_progress" and job.remote_state == "submitted"
    held = open_holds()
    assert abs(held - economy.held(job)) < Decimal("1e-8")
    assert job.estimate_high * economy.RATE < held < limit < job.estimate_high

    job = run_to_end(job)
    [period] = BudgetPeriod.objects.all()
    assert (job.status, period.held) == ("completed", 0) and 0 < period.spent <= limit
    assert_ledger_matches_simulator(upstream)


def test_a_job_the_budget_cant_hold_whole_pauses_before_anything_is_sent(upstream, catalog, owner):
    set_budget(user=owner, amount=Decimal("0.00001"))
    job = economy_job(owner, ["one", "two"], max_tokens=2000)
    assert economy.step(job.pk) is None
    job.refresh_from_db()
    assert job.status == "paused" and "budget" in job.reason.lower() and "holds the whole job" in job.reason
    assert (job.remote_state, job.remote_id) == ("", "")
    assert open_holds() == 0 and not Hold.objects.exists()
    assert set(BatchLine.objects.filter(job=job).values_list("status", flat=True)) == {"pending"}
    assert upstream.billed() == {}

    set_budget(user=owner, amount=Decimal(1))
    jobs.resume(job)
    assert run_to_end(job).status == "completed"
    assert_ledger_matches_simulator(upstream)


def test_a_submitted_economy_job_cant_be_paused_and_says_why(upstream, catalog, owner):
    job = economy_job(owner, ["one"])
    economy.step(job.pk)
    job.refresh_from_db()
    with pytest.raises(jobs.BadTransition, match="can't be paused once it is submitted"):
        jobs.pause(job)
    assert run_to_end(job).status == "completed"
    assert_ledger_matches_simulator(upstream)


def test_an_economy_job_not_yet_submitted_can_be_paused(upstream, catalog, owner):
    job = economy_job(owner, ["one"])
    jobs.pause(job)
    assert economy.step(job.pk) is None
    job.refresh_from_db()
    assert (job.status, job.remote_state) == ("paused", "")
    assert upstream.billed() == {}


def test_a_cancelled_job_still_settles_the_answers_that_arrive(upstream, catalog, owner):
    upstream.configure(batch_delay=0.5)
    job = economy_job(owner, ["one", "two"])
    economy.step(job.pk)
    jobs.cancel(BatchJob.objects.get(pk=job.pk))
    job.refresh_from_db()
    assert job.status == "cancelled"
    job = run_to_end(job)
    assert job.status == "cancelled" and job.completed == 2
    assert set(BatchLine.objects.filter(job=job).values_list("status", flat=True)) == {"done"}
    assert job.cost == sum(upstream.billed().values()) > 0
    assert_ledger_matches_simulator(upstream)


def test_a_line_naming_another_model_fails_and_is_never_sent(upstream, catalog, owner):
    rows = [
        {"custom_id": "a", "prompt": "mine"},
        {"custom_id": "b", "prompt": "other", "model": "openai/gpt-3.5-turbo"},
    ]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    stored = formats.store_upload(owner, SimpleUploadedFile("in.jsonl", text.encode()))
    job = jobs.start(jobs.create_job(owner, stored, origin="web", default_model=TEXT, economy=True))
    job = run_to_end(job)
    other = BatchLine.objects.get(job=job, custom_id="b")
    assert other.status == "failed" and "Economy mode sends one model" in other.error["message"]
    assert (job.status, job.completed, job.failed) == ("completed", 1, 1)
    assert len(upstream.billed()) == 1
    assert_ledger_matches_simulator(upstream)


def test_a_submission_the_batch_api_refuses_gives_every_hold_back(upstream, catalog, owner):
    entry = copy.deepcopy(upstream.app.state.sim.models[TEXT].info)
    entry["architecture"]["input_modalities"] = ["text", "image"]  # upstream now says it takes images
    upstream.control("POST", "models", json=entry)
    set_budget(user=owner, amount=Decimal(1))
    job = economy_job(owner, ["one", "two"])
    assert economy.step(job.pk) is None
    job.refresh_from_db()
    assert job.status == "paused" and "refused the batch" in job.reason and "text models only" in job.reason
    assert job.remote_state == "" and open_holds() == 0
    assert BudgetPeriod.objects.get().held == 0
    assert set(BatchLine.objects.filter(job=job).values_list("status", "hold_id")) == {("pending", None)}
    assert upstream.billed() == {}


def test_a_submission_whose_answer_never_came_is_never_sent_again(upstream, catalog, owner):
    set_budget(user=owner, amount=Decimal(1))
    job = economy_job(owner, ["one", "two"])
    economy._hold_lines(job, owner)  # held, then the process died before the POST's answer was written
    BatchJob.objects.filter(pk=job.pk).update(remote_state="submitting", remote_at=timezone.now())
    assert economy.step(job.pk) == 30.0  # a step may still be sending it: wait
    assert open_holds() > 0

    BatchJob.objects.filter(pk=job.pk).update(remote_at=timezone.now() - economy.SUBMIT_TIMEOUT)
    job = run_to_end(job)
    assert (job.status, job.failed, job.remote_state) == ("completed", 2, "settled")
    assert {line.error["code"] for line in BatchLine.objects.filter(job=job)} == {"economy_unknown"}
    assert open_holds() == 0 and BudgetPeriod.objects.get().held == 0
    assert upstream.billed() == {}  # nothing was sent twice (here: not even once)


def test_an_economy_job_goes_to_its_own_task_never_to_the_line_runner(
    upstream, catalog, owner, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(jobs.current_app, "send_task", lambda name, args, queue: sent.append((name, args, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        job = economy_job(owner, ["one"])
    assert sent == [("batches.tasks.economy_step", [job.pk], "batches")]

    runner.run_job(job.pk)  # a stray delivery of the line runner's task
    assert BatchLine.objects.get(job=job).status == "pending" and upstream.billed() == {}

    economy.step(job.pk)
    BatchJob.objects.filter(pk=job.pk).update(status="cancelled", lease_until=timezone.now())  # its step died
    with django_capture_on_commit_callbacks(execute=True):
        assert runner.resume_stalled() == 1  # the batch upstream is still polled: it is billed
    assert sent[-1] == ("batches.tasks.economy_step", [job.pk], "batches")
    run_to_end(job)
    assert BatchLine.objects.get(job=job).status == "done"
    assert_ledger_matches_simulator(upstream)

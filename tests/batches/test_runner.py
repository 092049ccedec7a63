"""batches.runner against the simulator: every line through the metered path once, bounded concurrency,
429 Retry-After, transient retries, the cache, a budget that runs out, lapsed claims taken over."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import Sum

from batches import claims, formats, jobs, runner
from batches.models import BatchJob, BatchLine
from billing.budgets import set_budget
from billing.models import LedgerEntry
from gateway import metered
from orweb import aio
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import upstream_calls

pytestmark = pytest.mark.django_db(transaction=True)
MINI = "openai/gpt-4o-mini"


@pytest.fixture(autouse=True)
def _batch_dir(settings, tmp_path):
    settings.ORWEB_BATCH_DIR = str(tmp_path / "batches")


def api_job(user, prompts: list[str], **line) -> BatchJob:
    rows = [json.dumps({"prompt": prompt, "model": MINI, **line}) for prompt in prompts]
    file = formats.store_upload(user, SimpleUploadedFile("in.jsonl", ("\n".join(rows) + "\n").encode()))
    return jobs.create_job(user, file, origin="api")


def statuses(job: BatchJob) -> list[str]:
    return list(BatchLine.objects.filter(job=job).values_list("status", flat=True))


def test_every_line_is_answered_once_and_charged_as_billed(simulator, catalog, owner):
    job = api_job(owner, [f"question {n}" for n in range(12)])
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == "completed" and job.finished_at and job.output_file_id
    assert (job.completed, job.failed) == (12, 0)
    lines = list(BatchLine.objects.filter(job=job))
    assert {line.status for line in lines} == {"done"}
    assert len({line.generation_id for line in lines}) == 12
    assert upstream_calls(simulator) == 12
    ledger = LedgerEntry.objects.filter(source="batch")
    assert set(ledger.values_list("generation_id", flat=True)) == {line.generation_id for line in lines}
    assert job.cost == ledger.aggregate(total=Sum("cost"))["total"] == sum(line.cost for line in lines)
    body = lines[0].response
    assert body["object"] == "chat.completion" and body["usage"]["cost"] == float(lines[0].cost)
    assert_ledger_matches_simulator(simulator)


def test_a_job_runs_at_most_its_concurrency_of_lines_at_once(simulator, catalog, owner, monkeypatch):
    job = api_job(owner, [f"slow {n} [[sim ttft=0.2]]" for n in range(9)])
    BatchJob.objects.filter(pk=job.pk).update(concurrency=3)
    now, most = 0, 0
    complete = metered.complete

    async def counting(*args, **kwargs):
        nonlocal now, most
        now += 1
        most = max(most, now)
        try:
            return await complete(*args, **kwargs)
        finally:
            now -= 1

    monkeypatch.setattr(runner.metered, "complete", counting)
    runner.run_job(job.pk)
    assert statuses(job) == ["done"] * 9
    assert most == 3


def test_the_users_jobs_share_the_users_concurrency(simulator, catalog, owner, settings):
    settings.ORWEB_BATCH_USER_CONCURRENCY = 4
    first = api_job(owner, ["a"])
    run = runner.JobRun(first.pk)
    run.job = first
    async_to_sync(run._set_concurrency)()
    assert run.limit == 4
    api_job(owner, ["b"])
    async_to_sync(run._set_concurrency)()
    assert run.limit == 2
    run.runs = 2  # two runs work the first job: each keeps to its half
    assert run.limit == 1


def test_a_429_with_retry_after_sends_the_line_back_to_wait(simulator, catalog, owner):
    # The client tries 3 times on its own (each 429, Retry-After 1 s); the 4th try, after the line has
    # waited out the Retry-After in the queue, is answered.
    job = api_job(owner, ["limited [[sim status=429 retry_after=1 fail_first=3 key=limited]]", "fine"])
    runner.run_job(job.pk)
    assert statuses(job) == ["done", "done"]
    limited = BatchLine.objects.get(job=job, number=1)
    assert limited.tries == 1  # a rate limit is not the line's fault: it doesn't count as a try
    assert upstream_calls(simulator) == 5
    assert_ledger_matches_simulator(simulator)


def test_transient_failures_are_retried_a_bounded_number_of_times(simulator, catalog, owner, settings):
    settings.ORWEB_BATCH_MAX_TRIES = 2
    job = api_job(
        owner,
        [
            "flaky [[sim status=503 fail_first=3 key=flaky]]",
            "down [[sim status=502]]",
            "refused [[sim status=400]]",
        ],
    )
    runner.run_job(job.pk)
    job.refresh_from_db()
    flaky, down, refused = BatchLine.objects.filter(job=job)
    assert (flaky.status, flaky.tries) == ("done", 2)
    assert (down.status, down.tries, down.error["status"]) == ("failed", 2, 502)
    assert (refused.status, refused.tries, refused.error["status"]) == ("failed", 1, 400)
    assert (job.status, job.completed, job.failed) == ("completed", 1, 2)


def test_identical_deterministic_lines_make_one_upstream_call(simulator, catalog, owner):
    job = api_job(owner, ["same question"] * 4 + ["other question"], temperature=0)
    runner.run_job(job.pk)
    assert upstream_calls(simulator) == 2
    lines = list(BatchLine.objects.filter(job=job))
    cached = [line for line in lines if line.cached]
    assert len(cached) == 3
    assert all(line.cost == 0 and line.response["usage"]["cost"] == 0 and not line.generation_id for line in cached)
    [paid] = [line for line in lines[:4] if not line.cached]
    assert paid.cost > 0 and cached[0].response["choices"] == paid.response["choices"]
    job.refresh_from_db()
    assert job.cost == sum(line.cost for line in lines)


def test_the_cache_spans_a_users_jobs_only_when_asked(simulator, catalog, owner):
    runner.run_job(api_job(owner, ["remembered"], temperature=0).pk)
    again = api_job(owner, ["remembered"], temperature=0)
    runner.run_job(again.pk)
    assert upstream_calls(simulator) == 2
    opted = api_job(owner, ["remembered"], temperature=0)
    BatchJob.objects.filter(pk=opted.pk).update(cache_across_jobs=True)
    runner.run_job(opted.pk)
    assert upstream_calls(simulator) == 2
    assert BatchLine.objects.get(job=opted).cached


def test_a_budget_that_runs_out_pauses_the_job_and_is_never_exceeded(simulator, catalog, owner):
    limit = Decimal("0.0025")  # a line holds ~0.0012 (max_tokens 2000 at gpt-4o-mini's price): two fit
    set_budget(user=owner, amount=limit)
    job = api_job(owner, [f"q{n} [[sim tokens=20]]" for n in range(6)], max_tokens=2000)
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == "paused" and "budget" in job.reason.lower()
    spent = LedgerEntry.objects.aggregate(total=Sum("cost"))["total"]
    assert 0 < spent <= limit
    assert 0 < job.completed < 6 and job.failed == 0
    assert set(statuses(job)) == {"done", "pending"}
    assert not BatchLine.objects.filter(job=job, status="pending", tries__gt=0).exists()

    set_budget(user=owner, amount=Decimal(1))
    jobs.resume(job)
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.completed) == ("completed", 6)
    assert_ledger_matches_simulator(simulator)


def test_lines_a_dead_run_held_are_taken_over_when_their_claims_lapse(simulator, catalog, owner):
    job = api_job(owner, ["one", "two", "three"])
    dead = claims.claim(job.pk, "dead-run", 2, seconds=-1)  # claimed, then the run died: lapsed at once
    assert [line.number for line in dead] == [1, 2]
    runner.run_job(job.pk)
    assert statuses(job) == ["done", "done", "done"]
    # The dead run can't settle what it no longer holds.
    assert not claims.settle_done(dead[0].id, "dead-run", response={}, generation_id="x", cost=Decimal(1))
    assert not claims.requeue(dead[0].id, "dead-run", wait=0)
    job.refresh_from_db()
    assert job.completed == 3 and job.cost == LedgerEntry.objects.aggregate(total=Sum("cost"))["total"]


def test_a_paused_job_or_one_with_every_run_slot_taken_is_left_alone(simulator, catalog, owner, settings):
    settings.ORWEB_BATCH_RUNS_PER_JOB = 2
    job = api_job(owner, ["one"])
    assert [claims.take_run(job.pk, run, 60, 2) for run in ("run-a", "run-b", "run-c")] == [0, 1, None]
    runner.run_job(job.pk)
    assert statuses(job) == ["pending"] and upstream_calls(simulator) == 0
    claims.drop_run(job.pk, "run-a")
    claims.drop_run(job.pk, "run-b")
    jobs.pause(job)
    runner.run_job(job.pk)
    assert statuses(job) == ["pending"] and upstream_calls(simulator) == 0


def test_resume_stalled_hands_orphaned_jobs_to_a_new_run_and_expires_old_ones(simulator, catalog, owner, monkeypatch):
    sent = []
    monkeypatch.setattr(jobs, "enqueue", lambda job: sent.append(job.pk))
    orphan = api_job(owner, ["one"])
    leased = api_job(owner, ["two"])
    claims.take_run(leased.pk, "live-run", 60, 2)
    old = api_job(owner, ["three"])
    BatchJob.objects.filter(pk=old.pk).update(expires_at=old.started_at)
    sent.clear()
    assert runner.resume_stalled() == 1
    old.refresh_from_db()
    assert old.status == "expired" and statuses(old) == ["cancelled"]
    assert orphan.pk in sent and leased.pk not in sent and old.pk not in sent


def test_a_rate_limited_line_gives_its_slot_to_the_next_line_while_it_waits(simulator, catalog, owner):
    # One slot: the 429's Retry-After is waited out in the queue, not in the call, so the next line goes first.
    job = api_job(owner, ["limited [[sim status=429 retry_after=1 fail_first=1 key=slot]]", "next"])
    BatchJob.objects.filter(pk=job.pk).update(concurrency=1)
    runner.run_job(job.pk)
    limited, following = BatchLine.objects.filter(job=job)
    assert (limited.status, following.status) == ("done", "done")
    assert following.finished_at < limited.finished_at
    assert upstream_calls(simulator) == 3
    assert_ledger_matches_simulator(simulator)


def test_a_run_claims_every_free_slot_in_one_statement(simulator, catalog, owner, monkeypatch):
    job = api_job(owner, [f"q{n}" for n in range(24)])
    BatchJob.objects.filter(pk=job.pk).update(concurrency=4)
    taken = []
    claim = claims.claim

    def counting(job_id, token, n, seconds, cap=None):
        found = claim(job_id, token, n, seconds, cap)
        taken.append(len(found))
        return found

    monkeypatch.setattr(runner.claims, "claim", counting)
    runner.run_job(job.pk)
    assert statuses(job) == ["done"] * 24
    assert sum(taken) == 24 and taken[0] == 4 and max(taken) == 4  # all four slots at once, never more


def test_a_job_never_has_more_lines_claimed_than_its_concurrency_whichever_runs_claim(simulator, catalog, owner):
    job = api_job(owner, [f"q{n}" for n in range(10)])
    assert len(claims.claim(job.pk, "run-a", 10, 60, cap=3)) == 3
    assert claims.claim(job.pk, "run-b", 10, 60, cap=3) == []
    assert len(claims.claim(job.pk, "run-b", 10, 60, cap=5)) == 2


def test_a_deterministic_line_is_not_claimed_while_another_run_asks_the_same(simulator, catalog, owner):
    rows = [json.dumps({"prompt": p, "model": MINI, "temperature": 0}) for p in ("same", "same", "other")]
    file = formats.store_upload(owner, SimpleUploadedFile("in.jsonl", ("\n".join(rows) + "\n").encode()))
    job = jobs.create_job(owner, file, origin="api")
    assert [line.number for line in claims.claim(job.pk, "run-a", 1, 60)] == [1]
    assert [line.number for line in claims.claim(job.pk, "run-b", 10, 60)] == [3]  # line 2 waits for run-a
    assert [line.number for line in claims.claim(job.pk, "run-a", 10, 60)] == [2]  # its own run may take it


def test_two_runs_share_a_job_each_line_once_within_its_concurrency(simulator, catalog, owner, monkeypatch, settings):
    settings.ORWEB_BATCH_RUNS_PER_JOB = 2
    job = api_job(owner, [f"slow {n} [[sim ttft=0.1]]" for n in range(40)])
    BatchJob.objects.filter(pk=job.pk).update(concurrency=4)
    lock = threading.Lock()
    now, most, threads = 0, 0, set()
    complete = metered.complete

    async def counting(*args, **kwargs):
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
            threads.add(threading.get_ident())
        try:
            return await complete(*args, **kwargs)
        finally:
            with lock:
                now -= 1

    monkeypatch.setattr(runner.metered, "complete", counting)
    runs = [threading.Thread(target=_run_in_thread, args=(job.pk,)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    job.refresh_from_db()
    assert job.status == "completed" and (job.completed, job.failed) == (40, 0)
    assert len(threads) == 2 and most <= 4  # both runs worked it, never past its concurrency together
    assert upstream_calls(simulator) == 40
    assert_ledger_matches_simulator(simulator)


def test_a_run_with_nothing_left_to_claim_leaves_the_last_lines_to_the_run_holding_them(simulator, catalog, owner):
    job = api_job(owner, ["one", "two", "three"])
    assert claims.take_run(job.pk, "other-run", 60, 2) == 0
    assert len(claims.claim(job.pk, "other-run", 2, 60)) == 2  # in flight in the other run
    runner.run_job(job.pk)  # returns at once instead of waiting for the other run's claims to lapse
    job.refresh_from_db()
    assert statuses(job) == ["running", "running", "done"] and job.status == "in_progress"
    assert upstream_calls(simulator) == 1


def _run_in_thread(job_id: str) -> None:
    try:
        runner.run_job(job_id)
    finally:
        connection.close()


def test_counts_a_dead_run_settled_but_never_wrote_are_made_again_from_the_lines(simulator, catalog, owner):
    job = api_job(owner, ["one", "two", "three"])
    [dead, *_] = claims.claim(job.pk, "dead-run", 1, seconds=60)
    assert claims.settle_done(dead.id, "dead-run", response={}, generation_id="g", cost=Decimal("0.5"), count=False)
    job.refresh_from_db()
    assert (job.completed, job.cost) == (0, 0)  # the run died before counting it
    runner.run_job(job.pk)
    job.refresh_from_db()
    lines = list(BatchLine.objects.filter(job=job))
    assert (job.status, job.completed, job.failed) == ("completed", 3, 0)
    assert job.cost == sum(line.cost for line in lines) and job.cost > Decimal("0.5")


def test_a_run_stops_sending_when_its_job_is_paused_and_gives_back_what_it_held(simulator, catalog, owner, monkeypatch):
    job = api_job(owner, [f"slow {n} [[sim ttft=0.3]]" for n in range(40)])
    BatchJob.objects.filter(pk=job.pk).update(concurrency=2)
    complete = metered.complete
    calls = 0

    async def pausing_on_the_third_call(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 3:
            await aio.db(lambda: jobs.pause(BatchJob.objects.get(pk=job.pk), "from another tab"))()
        return await complete(*args, **kwargs)

    monkeypatch.setattr(runner.metered, "complete", pausing_on_the_third_call)
    runner.run_job(job.pk)
    job.refresh_from_db()
    done = BatchLine.objects.filter(job=job, status="done").count()
    assert job.status == "paused" and 3 <= done < 10 and job.completed == done
    assert set(statuses(job)) == {"done", "pending"}
    assert not BatchLine.objects.filter(job=job, status="pending", tries__gt=0).exists()  # held, not sent

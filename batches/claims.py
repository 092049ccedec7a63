"""Who works on what: a job's runs (each in one of its run slots) and its lines' claims, each taken
atomically and given up by lapsing, and a line's settlement, written only by the run that still holds its
claim.

A job is worked by up to ORWEB_BATCH_RUNS_PER_JOB runs at once, one per worker process, so a big job uses
more than one core; each holds a `BatchRun` slot while it lives. A claim is `(claim token, claimed_until)` on
the line. Taking lines is one statement (`UPDATE ... WHERE id = ANY(ARRAY(SELECT ... LIMIT n FOR UPDATE SKIP
LOCKED)) RETURNING`), and the claims of one job are taken one at a time (a transaction-level advisory lock), so runs
never take the same line, the job never has more lines claimed than its concurrency, however many runs
share it, and a deterministic line is not taken while another run is asking the same thing (it is answered
from that run's result instead). A run that dies leaves claims that lapse, and lines whose claim lapsed are
claimable again. Settling is conditional on the claim and on the line still running: a line is done (or
failed) once. A run counts its settled lines into the job in batches (`add_counts`, one statement every
half second rather than one per line); since a run that dies takes its unwritten counts with it, the counts
are made again from the lines (`recount`) when a run takes a job no other run is working, and when the job
ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from psycopg.types.json import Jsonb

from batches.models import BatchJob, BatchLine, BatchRun
from orweb import sql

L = BatchLine.Status
CACHE_ACROSS_JOBS = dt.timedelta(hours=24)


@dataclass
class Claimed:
    """A line a run holds: what to send, and how many times it was taken."""

    id: int
    number: int
    request: dict[str, Any]
    cache_key: str
    tries: int


_LINES = BatchLine._meta.db_table
_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%(key)s))"
# `id = ANY(ARRAY(...))` rather than `id IN (...)`: the planner can't tell how few rows the computed LIMIT
# leaves, and would hash-join them against every line of the job.
_CLAIM = f"""
UPDATE {_LINES} SET status = 'running', claim = %(token)s, claimed_until = %(until)s,
    tries = tries + 1, not_before = NULL
WHERE id = ANY(ARRAY(
    SELECT id FROM {_LINES} AS line
    WHERE job_id = %(job)s
      AND ((status = 'pending' AND (not_before IS NULL OR not_before <= %(now)s))
           OR (status = 'running' AND claimed_until < %(now)s))
      AND EXISTS (SELECT 1 FROM {BatchJob._meta.db_table} WHERE id = %(job)s AND status = 'in_progress')
      AND (cache_key = '' OR NOT EXISTS (
          SELECT 1 FROM {_LINES} AS asking
          WHERE asking.job_id = %(job)s AND asking.cache_key = line.cache_key AND asking.status = 'running'
            AND asking.claimed_until >= %(now)s AND asking.claim <> %(token)s))
    ORDER BY number
    LIMIT GREATEST(0, LEAST(%(n)s, %(cap)s - (
        SELECT count(*) FROM {_LINES}
        WHERE job_id = %(job)s AND status = 'running' AND claimed_until >= %(now)s)))
    FOR UPDATE SKIP LOCKED
))
RETURNING id, number, request, cache_key, tries
"""


def claim(job_id: str, token: str, n: int, seconds: int, cap: int | None = None) -> list[Claimed]:
    """Take up to `n` lines of a running job, and no more than leaves `cap` lines claimed in the whole job
    (its concurrency, shared by its runs): pending ones whose wait is over, and running ones whose claim
    lapsed (their run died), lowest numbers first."""
    now = timezone.now()
    until = now + dt.timedelta(seconds=seconds)
    params = {"token": token, "until": until, "job": job_id, "now": now, "n": n, "cap": n if cap is None else cap}
    with transaction.atomic():
        sql.fetch(_LOCK, {"key": f"batch-claims:{job_id}"})
        rows = sql.fetch(_CLAIM, params)
    return sorted(
        (
            Claimed(id=i, number=number, request=_json(request), cache_key=key, tries=tries)
            for i, number, request, key, tries in rows
        ),
        key=lambda c: c.number,
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def take_run(job_id: str, token: str, seconds: int, slots: int) -> int | None:
    """Become one of the job's runs, in the first of its `slots` no live run holds, if it is running: the
    slot taken, or None. Whether other runs are working it too: `live_runs`."""
    now = timezone.now()
    if not BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.IN_PROGRESS).exists():
        return None
    until = now + dt.timedelta(seconds=seconds)
    for slot in range(slots):
        if BatchRun.objects.filter(job_id=job_id, slot=slot, until__lt=now).update(token=token, until=until):
            return slot
        with contextlib.suppress(IntegrityError), transaction.atomic():
            BatchRun.objects.create(job_id=job_id, slot=slot, token=token, until=until)
            return slot
    return None


def live_runs(job_id: str) -> int:
    """How many runs are working the job now (their slots renewed and not lapsed)."""
    return BatchRun.objects.filter(job_id=job_id, until__gte=timezone.now()).count()


def renew(job_id: str, token: str, seconds: int) -> bool:
    """Extend the run's slot and its lines' claims; False when the slot was lost (the run should stop)."""
    until = timezone.now() + dt.timedelta(seconds=seconds)
    BatchLine.objects.filter(job_id=job_id, status=L.RUNNING, claim=token).update(claimed_until=until)
    return BatchRun.objects.filter(job_id=job_id, token=token).update(until=until) == 1


def drop_run(job_id: str, token: str) -> None:
    BatchRun.objects.filter(job_id=job_id, token=token).delete()


# A line's settlement, the guard of "once": written only while the line runs under the caller's claim. By
# hand and prepared (`orweb.sql`): it runs once per line, and the ORM's statement building took as long as
# the statement itself.
_SETTLE = f"""
UPDATE {_LINES} SET status = %(status)s, claim = '', claimed_until = NULL, finished_at = %(now)s,
    response = %(response)s, error = %(error)s, generation_id = %(generation_id)s, cost = %(cost)s,
    cached = %(cached)s
WHERE id = %(id)s AND status = 'running' AND claim = %(token)s
RETURNING id
"""


def _settle(
    line_id: int,
    token: str,
    job_counts: dict[str, Any] | None,
    *,
    status: str,
    generation_id: str,
    response: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    cost: Decimal = Decimal(0),
    cached: bool = False,
) -> bool:
    params = {
        "id": line_id,
        "token": token,
        "status": status,
        "now": timezone.now(),
        "response": None if response is None else Jsonb(response),
        "error": None if error is None else Jsonb(error),
        "generation_id": generation_id or "",
        "cost": cost,
        "cached": cached,
    }
    with transaction.atomic() if job_counts else contextlib.nullcontext():
        settled = len(sql.fetch(_SETTLE, params)) == 1
        if settled and job_counts:
            BatchJob.objects.filter(lines__pk=line_id).update(**job_counts)
    return settled


def settle_done(
    line_id: int,
    token: str,
    *,
    response: dict[str, Any],
    generation_id: str,
    cost: Decimal,
    cached: bool = False,
    count: bool = True,
) -> bool:
    """The line answered: its response kept, its cost counted into the job (unless `count=False`: the
    caller counts it with `add_counts`). False if the claim was lost."""
    return _settle(
        line_id,
        token,
        {"completed": F("completed") + 1, "cost": F("cost") + cost} if count else None,
        status=L.DONE,
        response=response,
        generation_id=generation_id,
        cost=cost,
        cached=cached,
    )


def settle_failed(
    line_id: int, token: str, *, error: dict[str, Any], generation_id: str = "", count: bool = True
) -> bool:
    """The line failed for good (a refusal, or a transient error tried too often)."""
    counts = {"failed": F("failed") + 1} if count else None
    return _settle(line_id, token, counts, status=L.FAILED, error=error, generation_id=generation_id)


_ENDED = (
    BatchJob.Status.FINALIZING,
    BatchJob.Status.COMPLETED,
    BatchJob.Status.CANCELLED,
    BatchJob.Status.EXPIRED,
    BatchJob.Status.FAILED,
)


def add_counts(job_id: str, *, completed: int, failed: int, cost: Decimal) -> tuple[str, int]:
    """Count lines a run settled with `count=False` into their job, in one statement; the job's status (how
    a run learns that it was paused or cancelled meanwhile) and how many runs work it (they share it)."""
    jobs = BatchJob.objects.filter(pk=job_id)
    if completed or failed:
        # Not into a job that has ended: its end made the counts from the lines, these included (a run that
        # handed over may write after the last run finished the job).
        jobs.exclude(status__in=_ENDED).update(
            completed=F("completed") + completed, failed=F("failed") + failed, cost=F("cost") + cost
        )
    live = Count("runs", filter=Q(runs__until__gte=timezone.now()))
    found = jobs.annotate(live=live).values_list("status", "live").first()
    return found or ("", 0)


def recount(job_id: str) -> None:
    """Make the job's counts again from its lines (what a dead run settled but never counted included)."""
    counts = BatchLine.objects.filter(job_id=job_id).aggregate(
        completed=Count("id", filter=Q(status=L.DONE)),
        failed=Count("id", filter=Q(status=L.FAILED)),
        cost=Sum("cost", filter=Q(status=L.DONE), default=Decimal(0)),
    )
    BatchJob.objects.filter(pk=job_id).update(**counts)


def requeue(line_id: int, token: str, *, wait: float, counted: bool = True) -> bool:
    """Give the line back to wait `wait` seconds (429 Retry-After, backoff); `counted=False` when the try
    doesn't count against its limit (rate limits, a budget that ran out: nothing wrong with the line)."""
    fields: dict[str, Any] = {"status": L.PENDING, "claim": "", "claimed_until": None}
    fields["not_before"] = timezone.now() + dt.timedelta(seconds=wait) if wait > 0 else None
    if not counted:
        fields["tries"] = F("tries") - 1
    return BatchLine.objects.filter(pk=line_id, status=L.RUNNING, claim=token).update(**fields) == 1


def cached_answer(job_id: str, user_id: int, key: str, across_jobs: bool) -> dict[str, Any] | None:
    """The response of a line already answered for the same deterministic request: in this job, or in
    the user's jobs of the last 24 h when the job opted in."""
    lines = BatchLine.objects.filter(cache_key=key, status=L.DONE)
    if across_jobs:
        lines = lines.filter(job__user_id=user_id, finished_at__gte=timezone.now() - CACHE_ACROSS_JOBS)
    else:
        lines = lines.filter(job_id=job_id)
    found = lines.values_list("response", flat=True).first()
    return found


def outlook(job_id: str) -> tuple[str, float | None, bool]:
    """(status, seconds until the next pending line may go or None when none is pending, whether any line
    is running) — what a run with nothing in hand decides on: wait, stop, or finish the job."""
    job = BatchJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
    lines = BatchLine.objects.filter(job_id=job_id)
    running = lines.filter(status=L.RUNNING).exists()
    pending = lines.filter(status=L.PENDING).order_by(F("not_before").asc(nulls_first=True)).first()
    if pending is None:
        return job or "", None, running
    wait = 0.0 if pending.not_before is None else (pending.not_before - timezone.now()).total_seconds()
    return job or "", max(wait, 0.0), running


def busy_jobs(user_id: int) -> int:
    """How many of the user's jobs are running now (they share the user's concurrency)."""
    return BatchJob.objects.filter(user_id=user_id, status=BatchJob.Status.IN_PROGRESS).count()

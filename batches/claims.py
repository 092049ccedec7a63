"""Who works on what: a job's lease (one run at a time) and its lines' claims, each taken atomically and
given up by lapsing, and a line's settlement, written only by the run that still holds its claim.

A claim is `(claim token, claimed_until)` on the line. Taking one is a single statement (`UPDATE ... WHERE id
IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING`), so two runs never take the same line; a run
that dies leaves claims that lapse, and lines whose claim lapsed are claimable again. Settling is
conditional on the claim and on the line still running: a line is done (or failed) once. A run counts
its settled lines into the job in batches (`add_counts`, one statement every half second rather than one
per line); since a run that dies takes its unwritten counts with it, the counts are made again from the
lines (`recount`) when a run takes the job and when the job ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from batches.models import BatchJob, BatchLine

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


_CLAIM = f"""
UPDATE {BatchLine._meta.db_table} SET status = 'running', claim = %(token)s, claimed_until = %(until)s,
    tries = tries + 1, not_before = NULL
WHERE id IN (
    SELECT id FROM {BatchLine._meta.db_table}
    WHERE job_id = %(job)s
      AND ((status = 'pending' AND (not_before IS NULL OR not_before <= %(now)s))
           OR (status = 'running' AND claimed_until < %(now)s))
      AND EXISTS (SELECT 1 FROM {BatchJob._meta.db_table} WHERE id = %(job)s AND status = 'in_progress')
    ORDER BY number
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, number, request, cache_key, tries
"""


def claim(job_id: str, token: str, n: int, seconds: int) -> list[Claimed]:
    """Take up to `n` lines of a running job: pending ones whose wait is over, and running ones whose claim
    lapsed (their run died), lowest numbers first."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM, {"token": token, "until": now + dt.timedelta(seconds=seconds), "job": job_id, "now": now, "n": n}
        )
        rows = cursor.fetchall()
    return sorted(
        (
            Claimed(id=i, number=number, request=_json(request), cache_key=key, tries=tries)
            for i, number, request, key, tries in rows
        ),
        key=lambda c: c.number,
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def take_lease(job_id: str, token: str, seconds: int) -> bool:
    """Become the job's one run, if it is running and no other run's lease is live."""
    now = timezone.now()
    return (
        BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.IN_PROGRESS)
        .filter(_lapsed(now))
        .update(lease=token, lease_until=now + dt.timedelta(seconds=seconds))
        == 1
    )


def _lapsed(now: dt.datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def renew(job_id: str, token: str, seconds: int) -> bool:
    """Extend the run's lease and its lines' claims; False when the lease was lost (the run should stop)."""
    until = timezone.now() + dt.timedelta(seconds=seconds)
    BatchLine.objects.filter(job_id=job_id, status=L.RUNNING, claim=token).update(claimed_until=until)
    return BatchJob.objects.filter(pk=job_id, lease=token).update(lease_until=until) == 1


def drop_lease(job_id: str, token: str) -> None:
    BatchJob.objects.filter(pk=job_id, lease=token).update(lease="", lease_until=None)


def _settle(line_id: int, token: str, job_counts: dict[str, Any] | None, **fields: Any) -> bool:
    with transaction.atomic() if job_counts else contextlib.nullcontext():
        settled = BatchLine.objects.filter(pk=line_id, status=L.RUNNING, claim=token).update(
            claim="", claimed_until=None, finished_at=timezone.now(), **fields
        )
        if settled == 1 and job_counts:
            BatchJob.objects.filter(lines__pk=line_id).update(**job_counts)
    return settled == 1


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
        generation_id=generation_id or "",
        cost=cost,
        cached=cached,
        error=None,
    )


def settle_failed(
    line_id: int, token: str, *, error: dict[str, Any], generation_id: str = "", count: bool = True
) -> bool:
    """The line failed for good (a refusal, or a transient error tried too often)."""
    counts = {"failed": F("failed") + 1} if count else None
    return _settle(line_id, token, counts, status=L.FAILED, error=error, generation_id=generation_id)


def add_counts(job_id: str, *, completed: int, failed: int, cost: Decimal) -> str:
    """Count lines a run settled with `count=False` into their job, in one statement; the job's status
    (how a run learns that it was paused or cancelled meanwhile)."""
    jobs = BatchJob.objects.filter(pk=job_id)
    if completed or failed:
        jobs.update(completed=F("completed") + completed, failed=F("failed") + failed, cost=F("cost") + cost)
    return jobs.values_list("status", flat=True).first() or ""


def recount(job_id: str) -> None:
    """Make the job's counts again from its lines (what a dead run settled but never counted included)."""
    counts = BatchLine.objects.filter(job_id=job_id).aggregate(
        completed=Count("id", filter=Q(status=L.DONE)),
        failed=Count("id", filter=Q(status=L.FAILED)),
        cost=Sum("cost", filter=Q(status=L.DONE), default=Decimal(0)),
    )
    BatchJob.objects.filter(pk=job_id).update(**counts)


def release(line_ids: list[int], token: str) -> int:
    """Give back lines the run claimed but never sent (it is stopping): pending again, the try not counted."""
    return BatchLine.objects.filter(pk__in=line_ids, status=L.RUNNING, claim=token).update(
        status=L.PENDING, claim="", claimed_until=None, tries=F("tries") - 1
    )


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

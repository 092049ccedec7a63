"""Batch jobs: made from an uploaded file (every line checked, by number), priced as a range before they
run, then moved through their life by conditional updates, so two requests (or a request and a worker)
can never both make the same move:

    validating -> ready (web: waits for the user's Run) -> in_progress <-> paused
    in_progress -> finalizing -> completed            (every valid line done or failed)
    validating / ready / in_progress / paused -> cancelling -> cancelled
    in_progress / paused -> expired                   (past the completion window)

Work is enqueued by task name (`batches.tasks.run_job`, or `economy_step` for an economy job, whose lines go
to OpenRouter's Batch API: `batches.economy`), never by importing the task.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from batches import formats
from batches.claims import recount
from batches.lines import Checker, is_batchable
from batches.models import BatchFile, BatchJob, BatchLine
from billing.budgets import remaining_for
from catalog.models import CatalogModel

RUN_TASK = "batches.tasks.run_job"
ECONOMY_TASK = "batches.tasks.economy_step"
ENDED_TASK = "batches.tasks.job_ended"
CHUNK = 1000
WINDOW = dt.timedelta(hours=24)
ECONOMY_CANT_PAUSE = (
    "An economy job can't be paused once it is submitted: OpenRouter's Batch API answers it whole. "
    "Cancel it to stop waiting (answers that still arrive are paid for and kept)."
)
S = BatchJob.Status


class BadTransition(Exception):
    """A move the job's status doesn't allow (starting a running job, resuming a finished one...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def create_job(
    user: Any,
    file: BatchFile,
    *,
    origin: str,
    default_model: str | None = None,
    default_params: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    concurrency: int | None = None,
    cache_across_jobs: bool = False,
    webhook_url: str = "",
    economy: bool = False,
) -> BatchJob:
    """A job for `file`, its lines checked and stored (streamed, in chunks). A web job waits in "ready"
    for the user's Run; an API job starts at once with its valid lines (its bad lines become error-file
    lines), or fails when it has none. BadFile when the file can't be used."""
    if file.user_id != user.pk:
        raise Http404("No such file.")
    if file.deleted or file.purpose != BatchFile.Purpose.BATCH:
        raise formats.BadFile("That file was deleted or is not a batch input file.")
    job = BatchJob.objects.create(
        user=user,
        input_file=file,
        origin=origin,
        default_model=default_model or "",
        default_params=default_params or {},
        metadata=metadata or {},
        concurrency=_concurrency(concurrency),
        cache_across_jobs=cache_across_jobs,
        webhook_url=webhook_url,
        economy=economy,
    )
    _validate(job, Checker(user=user, default_model=job.default_model, default_params=dict(job.default_params)))
    if origin == BatchJob.Origin.API:
        if not job.valid:
            return _fail(job, "No line of the file is valid: see the error file.")
        if economy and (problem := _economy_model(job)):
            return _fail(job, problem)
        return start(job)
    _move(job, {S.VALIDATING}, S.READY)
    return job


def _economy_model(job: BatchJob) -> str:
    """An API economy job sends its lines to the one model they name (its default model from then on): the
    problem when they name more than one, or one the Batch API doesn't serve; "" when all is well."""
    if job.default_model:
        return ""
    named = BatchLine.objects.filter(job=job, status=BatchLine.Status.PENDING).values_list("request__model", flat=True)
    models = sorted(set(named.distinct()))
    if len(models) != 1:
        return f"Economy mode sends every line to one model; these lines name {len(models)}: {', '.join(models)}."
    if not is_batchable(CatalogModel.objects.filter(pk=models[0]).first()):
        return f"Economy mode is for text-only models OpenRouter's Batch API serves, not {models[0]}."
    BatchJob.objects.filter(pk=job.pk).update(default_model=models[0])
    job.default_model = models[0]
    return ""


def _concurrency(wanted: int | None) -> int:
    if wanted is None:
        return settings.ORWEB_BATCH_CONCURRENCY
    return max(1, min(int(wanted), settings.ORWEB_BATCH_MAX_CONCURRENCY))


def _validate(job: BatchJob, checker: Checker) -> None:
    """Read the file line by line, store each line checked, and total the counts and the estimate."""
    total = valid = prompt_tokens = 0
    low = high = Decimal(0)
    keys: set[str] = set()
    pending: list[BatchLine] = []
    for number, raw in formats.read_lines(job.input_file):
        checked = checker.check(number, raw)
        total += 1
        if checked.request is not None:
            valid += 1
            if not checked.cache_key or checked.cache_key not in keys:
                low, high, prompt_tokens = low + checked.low, high + checked.high, prompt_tokens + checked.prompt_tokens
            keys.add(checked.cache_key)
        pending.append(_line(job, checked))
        if len(pending) >= CHUNK:
            BatchLine.objects.bulk_create(pending)
            pending = []
    BatchLine.objects.bulk_create(pending)
    BatchJob.objects.filter(pk=job.pk).update(
        total=total,
        valid=valid,
        invalid=total - valid,
        estimate_low=low,
        estimate_high=high,
        prompt_tokens=prompt_tokens,
    )
    job.refresh_from_db()


def _line(job: BatchJob, checked: Any) -> BatchLine:
    if checked.request is None:
        return BatchLine(
            job=job,
            number=checked.number,
            custom_id=checked.custom_id,
            problem=checked.problem,
            status=BatchLine.Status.INVALID,
            error={"code": "invalid_request", "message": f"Line {checked.number}: {checked.problem}"},
        )
    return BatchLine(
        job=job,
        number=checked.number,
        custom_id=checked.custom_id,
        request=checked.request,
        cache_key=checked.cache_key,
    )


def estimate(job: BatchJob) -> tuple[Decimal, Decimal, bool, Decimal | None]:
    """(low, high, fits, remaining): the job's cost range, whether its high end fits the tightest budget
    that applies to its owner, and what that budget has left (None when none applies)."""
    remaining = remaining_for(job.user)
    fits = remaining is None or job.estimate_high <= remaining
    return job.estimate_low, job.estimate_high, fits, remaining


def start(job: BatchJob) -> BatchJob:
    """Run a validated job's valid lines (web: the user's Run)."""
    if not job.valid:
        raise BadTransition("This job has no valid lines to run.")
    now = timezone.now()
    _move(job, {S.VALIDATING, S.READY}, S.IN_PROGRESS, started_at=now, expires_at=now + WINDOW, reason="")
    enqueue(job)
    return job


def pause(job: BatchJob, reason: str = "") -> BatchJob:
    """Stop sending lines; the lines in flight finish and are kept. `reason` is shown to the user. An
    economy job submitted to the Batch API can't be paused (`batches.economy`)."""
    if job.economy:  # one conditional update, so a submission and a pause can't both win
        if not BatchJob.objects.filter(pk=job.pk, status=S.IN_PROGRESS, remote_state="").update(
            status=S.PAUSED, reason=reason
        ):
            job.refresh_from_db()
            raise BadTransition(ECONOMY_CANT_PAUSE if job.remote_state else "Only a running job can be paused.")
        job.refresh_from_db()
        return job
    _move(job, {S.IN_PROGRESS}, S.PAUSED, reason=reason)
    return job


def resume(job: BatchJob) -> BatchJob:
    """Carry on with a paused job's remaining lines."""
    _move(job, {S.PAUSED}, S.IN_PROGRESS, reason="")
    enqueue(job)
    return job


def cancel(job: BatchJob) -> BatchJob:
    """Send nothing more; lines in flight finish (and are paid for), the rest are cancelled. Completed
    lines stay downloadable. The job is cancelled at once when nothing is in flight, else by its runner."""
    _move(job, {S.VALIDATING, S.READY, S.IN_PROGRESS, S.PAUSED}, S.CANCELLING, cancelled_at=timezone.now())
    finish_cancel(job)
    job.refresh_from_db()
    return job


def finish_cancel(job: BatchJob) -> bool:
    """Cancel a cancelling job's lines not yet sent and mark it cancelled, unless a live claim is still
    working on a line (its runner calls this again when it's done). True when the job is now cancelled."""
    now = timezone.now()
    with transaction.atomic():
        locked = BatchJob.objects.select_for_update().filter(pk=job.pk, status=S.CANCELLING).first()
        if locked is None:
            return False
        lines = BatchLine.objects.filter(job=job)
        if lines.filter(status=BatchLine.Status.RUNNING, claimed_until__gte=now).exists():
            return False
        lines.filter(status__in=(BatchLine.Status.PENDING, BatchLine.Status.RUNNING)).update(
            status=BatchLine.Status.CANCELLED,
            claim="",
            claimed_until=None,
            error={"code": "batch_cancelled", "message": "The batch was cancelled before this line was sent."},
        )
        _close(locked, S.CANCELLED)
    return True


def finish(job: BatchJob) -> bool:
    """in_progress -> finalizing -> completed once no valid line is pending or running. True if done here."""
    with transaction.atomic():
        locked = BatchJob.objects.select_for_update().filter(pk=job.pk, status=S.IN_PROGRESS).first()
        if locked is None:
            return False
        open_lines = (BatchLine.Status.PENDING, BatchLine.Status.RUNNING)
        if BatchLine.objects.filter(job=job, status__in=open_lines).exists():
            return False
        BatchJob.objects.filter(pk=job.pk).update(status=S.FINALIZING)
        _close(locked, S.COMPLETED)
    return True


def expire(job: BatchJob) -> bool:
    """A job past its completion window: the lines not yet sent are cancelled as expired."""
    with transaction.atomic():
        locked = BatchJob.objects.select_for_update().filter(pk=job.pk, status__in=(S.IN_PROGRESS, S.PAUSED)).first()
        if locked is None:
            return False
        BatchLine.objects.filter(job=job, status=BatchLine.Status.PENDING).update(
            status=BatchLine.Status.CANCELLED,
            error={"code": "batch_expired", "message": "This line was not run within the batch's completion window."},
        )
        _close(locked, S.EXPIRED)
    return True


def _close(job: BatchJob, status: str) -> None:
    """The job's end: its counts made from its lines, its output and error files named (their content is
    made from the lines on download), the finish time set."""
    recount(job.pk)
    output = BatchFile.objects.create(
        user_id=job.user_id, purpose=BatchFile.Purpose.BATCH_OUTPUT, filename=f"{job.pk}_output.jsonl"
    )
    errors = BatchFile.objects.create(
        user_id=job.user_id, purpose=BatchFile.Purpose.BATCH_ERROR, filename=f"{job.pk}_error.jsonl"
    )
    BatchJob.objects.filter(pk=job.pk).update(
        status=status, output_file=output, error_file=errors, finished_at=timezone.now()
    )
    _tell_owner(job)


def _tell_owner(job: BatchJob) -> None:
    """Have a worker e-mail the owner and call the job's webhook, once the end is committed."""
    transaction.on_commit(lambda: current_app.send_task(ENDED_TASK, args=[job.pk]))


def _fail(job: BatchJob, reason: str) -> BatchJob:
    _move(job, {S.VALIDATING}, S.FAILED, reason=reason, finished_at=timezone.now())
    with transaction.atomic():
        errors = BatchFile.objects.create(
            user_id=job.user_id, purpose=BatchFile.Purpose.BATCH_ERROR, filename=f"{job.pk}_error.jsonl"
        )
        BatchJob.objects.filter(pk=job.pk).update(error_file=errors)
    _tell_owner(job)
    job.refresh_from_db()
    return job


def _move(job: BatchJob, sources: set[str], target: str, **fields: Any) -> None:
    """Change the status only from one of `sources` (a conditional update: one mover wins)."""
    moved = BatchJob.objects.filter(pk=job.pk, status__in=sources).update(status=target, **fields)
    if moved != 1:
        job.refresh_from_db(fields=["status"])
        raise BadTransition(
            f"A {job.get_status_display().replace('_', ' ')} job can't be made {target.replace('_', ' ')}."
        )
    job.refresh_from_db()


def enqueue(job: BatchJob) -> None:
    """Have batch workers run the job (after this transaction commits, so they see the job's status): line
    by line, as up to ORWEB_BATCH_RUNS_PER_JOB runs sharing it (a run finding every slot taken leaves at
    once), or in economy mode as one Batch API submission."""
    task = ECONOMY_TASK if job.economy else RUN_TASK
    runs = 1 if job.economy else max(1, min(settings.ORWEB_BATCH_RUNS_PER_JOB, job.concurrency))

    def send() -> None:
        for _ in range(runs):
            current_app.send_task(task, args=[job.pk], queue="batches")

    transaction.on_commit(send)


def progress(job: BatchJob) -> dict[str, Any]:
    """How far the job is: lines done / failed / remaining, spend, percent, throughput over the last five
    minutes (lines per minute) and the time that leaves, in seconds (None when nothing is moving)."""
    job.refresh_from_db()
    finished = job.completed + job.failed
    cancelled = BatchLine.objects.filter(job=job, status=BatchLine.Status.CANCELLED).count() if job.is_finished else 0
    remaining = max(job.valid - finished - cancelled, 0)
    since = timezone.now() - dt.timedelta(minutes=5)
    recent = BatchLine.objects.filter(job=job, finished_at__gte=since).count()
    window = min(5.0, max((timezone.now() - (job.started_at or since)).total_seconds() / 60, 1 / 60))
    per_minute = recent / window if recent else 0.0
    return {
        "status": job.status,
        "reason": job.reason,
        "total": job.total,
        "valid": job.valid,
        "invalid": job.invalid,
        "done": job.completed,
        "failed": job.failed,
        "cancelled": cancelled,
        "remaining": remaining,
        "cost": job.cost,
        "percent": round(100 * finished / job.valid, 1) if job.valid else 0.0,
        "per_minute": round(per_minute, 1),
        "eta_seconds": round(remaining / per_minute * 60) if per_minute and remaining and job.is_running else None,
    }


def for_user(user: Any) -> QuerySet[BatchJob]:
    """The user's own jobs, newest first."""
    return BatchJob.objects.filter(user=user).select_related("input_file")


def get_for(user: Any, job_id: str) -> BatchJob:
    """The user's job `job_id`; Http404 for a job that isn't theirs (the same answer as for none)."""
    job = BatchJob.objects.filter(pk=job_id, user=user).select_related("input_file").first()
    if job is None:
        raise Http404("No such batch.")
    return job


def get_file_for(user: Any, file_id: str) -> BatchFile:
    """The user's file `file_id`; Http404 for a file that isn't theirs, or was deleted."""
    file = BatchFile.objects.filter(pk=file_id, user=user, deleted=False).first()
    if file is None:
        raise Http404("No such file.")
    return file


def job_of_result_file(file: BatchFile) -> BatchJob | None:
    """The job whose output or error file this is (None for an input file)."""
    if file.purpose == BatchFile.Purpose.BATCH_OUTPUT:
        return BatchJob.objects.filter(output_file=file).first()
    if file.purpose == BatchFile.Purpose.BATCH_ERROR:
        return BatchJob.objects.filter(error_file=file).first()
    return None

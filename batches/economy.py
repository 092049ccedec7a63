"""Economy mode: a job's lines sent as one batch through OpenRouter's Batch API (beta), answered within
24 h at about half the list price, for text-only models.

The money stays on the one path's rules, with the Batch API in place of the call:

1. **hold**: every line is planned as the metered path plans a call (`gateway.admission.plan`: policy, its
   body, its worst case at list price) and held against the budgets (`billing.holds.place_hold`) at the
   price the Batch API will charge: HOLD_RATE of its list-price worst case, the Batch API's "about half"
   (RATE) with a margin, since OpenRouter documents the discount as approximate. All in one transaction
   that also writes each hold's id on its line, so either the whole job is held or nothing is (the job
   pauses with the budget's reason). Should a result ever cost more than its hold, it is still charged
   what OpenRouter reports;
2. **submit**: `remote_state` is set to "submitting" (committed) before the POST and "submitted" with the
   remote id right after it, so a crash in between is seen and never submits the lines twice;
3. **poll**: a Celery task comes back until the batch is done (`step` says when);
4. **settle**: line by line, each answer through `billing.ledger.settle` (source "batch", its generation
   id and the cost the Batch API reported), which also releases the line's hold; a failed request
   releases its hold and charges nothing (the Batch API doesn't bill it).

Once submitted a job can't be paused (the Batch API answers it whole); cancelled, it still settles the
results that arrive, because upstream bills them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from decimal import ROUND_CEILING, Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from batches import jobs
from batches.claims import recount
from batches.models import BatchJob, BatchLine
from billing.holds import place_hold, release
from billing.ledger import Outcome, settle
from billing.models import LedgerEntry
from billing.pricing import estimate
from catalog.models import CatalogModel
from gateway import context as call_context
from gateway.admission import plan
from gateway.api_requests import parse_chat_request
from openrouter.batch_api import BatchApiClient
from openrouter.errors import OpenRouterError
from orweb.errors import BudgetExceeded, GatewayError, InvalidRequest
from orweb.money import json_usd

log = logging.getLogger("orweb.batches")
RATE = Decimal("0.5")  # what the Batch API charges of the list price, about
PLACES = Decimal("1e-10")
HOLD_RATE = Decimal("0.6")  # what a line is held at, of its list-price worst case: RATE and a margin for "about"
HOLD_TTL = jobs.WINDOW + dt.timedelta(hours=1)  # a hold outlives the batch's window, then lapses
SUBMIT_TIMEOUT = dt.timedelta(minutes=10)  # "submitting" older than this: the POST's outcome is unknown
FIRST_POLL, LAST_POLL = 2.0, 300.0
S, L = BatchJob.Status, BatchLine.Status
SUBMITTING, SUBMITTED, SETTLED = "submitting", "submitted", "settled"


def discounted(job: BatchJob) -> tuple[Decimal, Decimal]:
    """The job's estimate range at the Batch API's price."""
    return job.estimate_low * RATE, job.estimate_high * RATE


def held(job: BatchJob) -> Decimal:
    """What the job holds against its owner's budgets while its batch is upstream (the high end)."""
    return held_for(job.estimate_high)


def held_for(worst_case: Decimal) -> Decimal:
    """The hold for a list-price worst case, rounded up to the ledger's places."""
    return (worst_case * HOLD_RATE).quantize(PLACES, rounding=ROUND_CEILING)


def step(job_id: str) -> float | None:
    """Move an economy job on: submit it, or poll it and settle its results. Seconds until the next step,
    or None when there is nothing more to do."""
    job = BatchJob.objects.filter(pk=job_id, economy=True).first()
    if job is None:
        return None
    if job.remote_state == "" and job.status == S.IN_PROGRESS:
        wait = submit(job)
    elif job.remote_state == SUBMITTING:
        wait = _unknown_submission(job)
    elif job.remote_state == SUBMITTED:
        wait = poll(job)
    else:
        wait = None
    if wait is not None:  # the job has a live step: beat's sweep leaves it alone until this lapses
        until = timezone.now() + dt.timedelta(seconds=wait + 60)
        BatchJob.objects.filter(pk=job_id).update(lease="economy", lease_until=until)
    return wait


def submit(job: BatchJob) -> float | None:
    """Hold every pending line, then submit them as one upstream batch."""
    now = timezone.now()
    if not BatchJob.objects.filter(pk=job.pk, status=S.IN_PROGRESS, remote_state="").update(
        remote_state=SUBMITTING, remote_at=now
    ):
        return None
    user = get_user_model().objects.get(pk=job.user_id)
    try:
        requests = _hold_lines(job, user)
    except BudgetExceeded as error:
        BatchJob.objects.filter(pk=job.pk).update(remote_state="")
        _pause(job, f"Paused: {error.message} Economy mode holds the whole job before it is submitted.")
        return None
    if not requests:
        BatchJob.objects.filter(pk=job.pk).update(remote_state="")
        jobs.finish(job)
        return None
    try:
        remote = async_to_sync(_post)(job.default_model, requests)
    except OpenRouterError as error:
        if error.status is None:
            return _unknown_submission(job)  # it may have arrived: never sent again
        _give_back(job)
        if error.status == 429 or error.status >= 500:
            return error.retry_after or 30.0
        _pause(job, f"Paused: OpenRouter's Batch API refused the batch: {error.message}")
        return None
    BatchJob.objects.filter(pk=job.pk).update(remote_id=remote["id"], remote_state=SUBMITTED, remote_at=timezone.now())
    return FIRST_POLL


def _hold_lines(job: BatchJob, user: Any) -> list[dict[str, Any]]:
    """Plan and hold every pending line in one transaction (all held or none); the Batch API's requests.
    A line the metered path would refuse fails here, as it would there."""
    requests: list[dict[str, Any]] = []
    context = call_context.for_user(user, [job.default_model])
    with transaction.atomic():
        for line in BatchLine.objects.filter(job=job, status=L.PENDING).order_by("number").iterator():
            try:
                chat = parse_chat_request(line.request).chat
                if chat.model != job.default_model:
                    raise InvalidRequest(
                        f"Economy mode sends one model, {job.default_model}; this line asks for {chat.model}.",
                        param="model",
                    )
                planned = plan(context, chat)
            except GatewayError as error:
                _fail_line(line, {"code": error.code, "message": error.message, "status": error.status})
                continue
            hold = place_hold(user, held_for(planned.worst_case()), ttl=HOLD_TTL)  # BudgetExceeded: all rolled back
            BatchLine.objects.filter(pk=line.pk).update(
                status=L.RUNNING, claim="economy", tries=1, hold_id=hold.pk if hold else None
            )
            requests.append({"custom_id": str(line.number), "body": planned.body(user.pk, chat.messages)})
    return requests


async def _post(model: str, requests: list[dict[str, Any]]) -> dict[str, Any]:
    async with BatchApiClient(settings.OPENROUTER_API_KEY, settings.OPENROUTER_BASE_URL) as client:
        return await client.submit(model, requests)


async def _get(remote_id: str) -> dict[str, Any]:
    async with BatchApiClient(settings.OPENROUTER_API_KEY, settings.OPENROUTER_BASE_URL) as client:
        return await client.retrieve(remote_id)


def _give_back(job: BatchJob) -> None:
    """The Batch API refused the submission: the lines' holds released, the lines pending again."""
    with transaction.atomic():
        for line in BatchLine.objects.filter(job=job, status=L.RUNNING, claim="economy"):
            if line.hold_id:
                release(line.hold_id)
        BatchLine.objects.filter(job=job, status=L.RUNNING, claim="economy").update(
            status=L.PENDING, claim="", hold_id=None, tries=0
        )
        BatchJob.objects.filter(pk=job.pk).update(remote_state="")


def _unknown_submission(job: BatchJob) -> float | None:
    """A POST whose answer never came: wait for a step still sending it, then give the lines up as
    unknown (they are never sent twice; if upstream billed them, the daily `/key` check shows the drift)."""
    if job.remote_at and timezone.now() - job.remote_at < SUBMIT_TIMEOUT:
        return 30.0
    error = {"code": "economy_unknown", "message": "The submission to OpenRouter's Batch API went unanswered."}
    _end_open_lines(job, error)
    BatchJob.objects.filter(pk=job.pk).update(remote_state=SETTLED)
    _finish(job)
    return None


def poll(job: BatchJob) -> float | None:
    """Ask for the batch; when it is done, settle each result. Seconds until the next poll (later the
    longer it runs), or None when done."""
    try:
        remote = async_to_sync(_get)(job.remote_id)
    except OpenRouterError as error:
        log.warning("economy batch %s: polling %s failed: %s", job.pk, job.remote_id, error)
        return min(max(error.retry_after or 30.0, FIRST_POLL), LAST_POLL)
    status = remote.get("status")
    if status == "completed":
        for result in remote.get("results") or ():
            settle_result(job, result)
        _end_open_lines(job, {"code": "economy_missing", "message": "The Batch API's results left this line out."})
    elif status in ("failed", "expired", "cancelled"):
        _end_open_lines(job, {"code": f"economy_{status}", "message": f"OpenRouter's Batch API reports it {status}."})
    else:
        waited = (timezone.now() - (job.remote_at or timezone.now())).total_seconds()
        return min(max(waited / 10, FIRST_POLL), LAST_POLL)
    BatchJob.objects.filter(pk=job.pk).update(remote_state=SETTLED)
    _finish(job)
    return None


def settle_result(job: BatchJob, result: dict[str, Any]) -> None:
    """One result, once: the answer charged at its reported cost (its hold released), or the failure
    (the hold released, nothing charged). Lines cancelled meanwhile are settled too: upstream billed them."""
    number = str(result.get("custom_id", ""))
    if not number.isdigit():
        return
    with transaction.atomic():
        line = (
            BatchLine.objects.select_for_update()
            .filter(job=job, number=int(number), status__in=(L.RUNNING, L.CANCELLED), generation_id="")
            .first()
        )
        if line is None:
            return
        response = result.get("response") or {}
        body = response.get("body") if isinstance(response, dict) else None
        if result.get("error") or not isinstance(body, dict):
            if line.hold_id:
                release(line.hold_id)
            error = result.get("error") or {}
            _fail_line(line, {"code": "upstream_error", "message": str(error.get("message") or error), "status": 502})
            return
        entry = settle(_outcome(job, line, body), hold_id=line.hold_id)
        BatchLine.objects.filter(pk=line.pk).update(
            status=L.DONE,
            response=_json_ready(body),
            generation_id=body.get("id") or "",
            cost=entry.cost,
            claim="",
            error=None,
            finished_at=timezone.now(),
        )


def _outcome(job: BatchJob, line: BatchLine, body: dict[str, Any]) -> Outcome:
    """The ledger's record of an answer: the cost the Batch API reported, else the catalog price at the
    batch rate, marked estimated (reconciliation reads `/generation` later)."""
    usage = body.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    reported = usage.get("cost")
    served = str(body.get("model") or job.default_model)
    if reported is not None:
        cost, source = Decimal(str(reported)), LedgerEntry.CostSource.REPORTED
    else:
        model = CatalogModel.objects.filter(pk=served).first()
        cost, source = estimate(model, prompt, completion) * RATE, LedgerEntry.CostSource.ESTIMATED
    return Outcome(
        user_id=job.user_id,
        source="batch",
        requested_model=(line.request or {}).get("model", job.default_model),
        status=LedgerEntry.Status.OK,
        cost=cost,
        cost_source=source,
        served_model=served,
        provider=str(body.get("provider") or ""),
        generation_id=body.get("id") or None,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def _json_ready(value: Any) -> Any:
    """The answer as stored: amounts (read exactly as Decimals) as JSON numbers, as OpenAI's shapes carry
    them (`orweb.money.json_usd`)."""
    if isinstance(value, Decimal):
        return json_usd(value)
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value


def _fail_line(line: BatchLine, error: dict[str, Any]) -> None:
    BatchLine.objects.filter(pk=line.pk).update(status=L.FAILED, error=error, claim="", finished_at=timezone.now())


def _end_open_lines(job: BatchJob, error: dict[str, Any]) -> None:
    """Lines submitted but not answered: their holds released (once: a released hold stays so), failed
    (cancelled ones stay cancelled)."""
    with transaction.atomic():
        unanswered = BatchLine.objects.filter(job=job, status__in=(L.RUNNING, L.CANCELLED), hold_id__isnull=False)
        for hold_id in unanswered.values_list("hold_id", flat=True):
            release(hold_id)
        BatchLine.objects.filter(job=job, status=L.RUNNING, claim="economy").update(
            status=L.FAILED, error=error, claim="", finished_at=timezone.now()
        )


def _finish(job: BatchJob) -> None:
    """The results are in: the job completes (or, cancelled meanwhile, its counts are made again)."""
    BatchJob.objects.filter(pk=job.pk).update(lease="", lease_until=None)
    if not jobs.finish(job):
        recount(job.pk)


def _pause(job: BatchJob, reason: str) -> None:
    with contextlib.suppress(jobs.BadTransition):  # paused or cancelled meanwhile
        jobs.pause(job, reason)

"""Running a job: up to ORWEB_BATCH_RUNS_PER_JOB runs at once, each in its own worker process and on its
own event loop (so a big job uses more than one core), sharing the job's concurrency; every line through
the one metered path (`gateway.metered.complete`, source "batch").

A run claims lines as slots free up (`batches.claims`: the job never has more lines claimed than its
concurrency, whatever its runs do, and each run keeps to its share of it), renews its slot and claims while
it works, settles each line once, conditionally on its claim, and counts settled lines into the job every
half second in one statement (which also tells it the job was paused or cancelled, and how many runs share
it). Per line that leaves the metered path's admission and settlement, the claim and the line's own
settling. How a call ends decides what happens to its line:

- answered: done, with OpenAI's `chat.completion` body (usage with cost);
- 429 upstream (the client doesn't wait it out: `wait_on_rate_limit=False`) or our own rate limit: back to
  pending until Retry-After has passed; the slot goes to another line meanwhile (no busy loop, no try
  counted);
- a budget that can't hold the next line, or the shared account out of credits: the line goes back and the
  job pauses with the reason; what is already held and spent stays within the limit (every call is held);
- transient failures (5xx, timeouts, our database or Redis away): tried again with backoff, at most
  ORWEB_BATCH_MAX_TRIES times, then failed;
- anything the request itself is refused for: failed, with OpenAI's error body.

Identical deterministic lines (temperature 0: same model, messages and parameters) make one upstream call:
the claims keep a request being asked in one run, and the others copy its answer at $0, marked cached. A run
that dies leaves claims that lapse: another run of the job, or the next run (started by `resume_stalled`
from beat, or a redelivered task) takes those lines again. A line whose call was in flight then is paid
twice: the lost generation (settled once from the dead process's journal, as every call is) and the new
one, since OpenRouter's `/generation` gives a generation's cost but not its text. A run with nothing left
to claim while others still work the job's last lines leaves them to it; the last one finishes the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
import uuid
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from batches import claims, jobs
from batches.claims import Claimed
from batches.models import BatchJob, BatchRun
from gateway import metered
from gateway.api_requests import parse_chat_request
from gateway.api_responses import completion_json, error_response_parts
from orweb import aio
from orweb.errors import BudgetExceeded, GatewayError, RateLimitExceeded, ServiceUnavailable, UpstreamFailed

log = logging.getLogger("orweb.batches")
RENEW_EVERY = 10.0
COUNT_EVERY = 0.5
IDLE_WAIT = 5.0
MAX_BACKOFF = 60.0
LEFT = "left"  # a run's end when the job's last lines are in other runs' hands
OUT_OF_CREDITS = "The shared OpenRouter account is out of credits; an admin must top it up, then resume."


def run_job(job_id: str) -> None:
    """Work the job until nothing is left to send, it is paused or cancelled, or another run has it. An
    economy job is never run here: its lines go to the Batch API (`batches.economy`)."""
    if BatchJob.objects.filter(pk=job_id, economy=True).exists():
        return
    async_to_sync(JobRun(job_id).run)()


class JobRun:
    """One run of one job, on one event loop."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.token = uuid.uuid4().hex
        self.claim_seconds = settings.ORWEB_BATCH_CLAIM_SECONDS
        self.renew_every = min(RENEW_EVERY, self.claim_seconds / 3)
        self.leaders: dict[str, asyncio.Future] = {}
        self.job: BatchJob | None = None
        self.user: Any = None
        self.concurrency = 1  # the job's, within the user's share: what all its runs may have claimed at once
        self.runs = 1  # runs working the job now, this one included
        self.stopping = False
        self.counts = Counts()

    @property
    def limit(self) -> int:
        """This run's share of the job's concurrency."""
        return max(1, math.ceil(self.concurrency / max(self.runs, 1)))

    async def run(self) -> None:
        slots = settings.ORWEB_BATCH_RUNS_PER_JOB
        while await aio.db(claims.take_run)(self.job_id, self.token, self.claim_seconds, slots) is not None:
            try:
                await self._load()
                status = await self._work()
            finally:
                await aio.db(claims.drop_run)(self.job_id, self.token)
            if status == BatchJob.Status.CANCELLING:
                await aio.db(jobs.finish_cancel)(self.job)
            if status != BatchJob.Status.IN_PROGRESS:
                return  # else: resumed while this run was stopping, or lines still waiting: carry on

    async def _load(self) -> None:
        self.runs = await aio.db(claims.live_runs)(self.job_id)
        if self.runs <= 1:  # the others' unwritten counts would be counted twice
            await aio.db(claims.recount)(self.job_id)
        self.job = await aio.db(BatchJob.objects.get)(pk=self.job_id)
        self.stopping = False
        self.user = await aio.db(get_user_model().objects.get)(pk=self.job.user_id)
        await self._set_concurrency()

    async def _set_concurrency(self) -> None:
        assert self.job is not None
        busy = await aio.db(claims.busy_jobs)(self.job.user_id)
        share = max(1, settings.ORWEB_BATCH_USER_CONCURRENCY // max(busy, 1))
        self.concurrency = max(1, min(self.job.concurrency, share))

    async def _work(self) -> str:
        """Claim and run lines until none is left to claim now; the job's status at the end (LEFT when the
        rest is in other runs' hands)."""
        inflight: set[asyncio.Task] = set()
        renewed = counted = time.monotonic()
        try:
            while not self.stopping:
                inflight = {task for task in inflight if not task.done()}
                if len(inflight) < self.limit:
                    found = await aio.db(claims.claim)(
                        self.job_id, self.token, self.limit - len(inflight), self.claim_seconds, self.concurrency
                    )
                    inflight.update(asyncio.ensure_future(self._line(line)) for line in found)
                if time.monotonic() - counted > COUNT_EVERY:
                    counted = time.monotonic()
                    if await self._count() != BatchJob.Status.IN_PROGRESS:
                        break  # paused or cancelled meanwhile: nothing more is sent
                if time.monotonic() - renewed > self.renew_every:
                    renewed = time.monotonic()
                    if not await aio.db(claims.renew)(self.job_id, self.token, self.claim_seconds):
                        break  # our slot was taken over: the other run carries on
                    await self._set_concurrency()
                if inflight:
                    await asyncio.wait(inflight, timeout=COUNT_EVERY, return_when=asyncio.FIRST_COMPLETED)
                    continue
                await self._count()
                status, wait, running = await aio.db(claims.outlook)(self.job_id)
                if status != BatchJob.Status.IN_PROGRESS:
                    break
                if wait is None and not running:
                    await aio.db(jobs.finish)(self.job)
                    return BatchJob.Status.COMPLETED
                if wait is None and self.runs > 1:
                    return LEFT  # the last lines are in other runs' hands; they finish the job
                # Nothing claimable now although a line waits (its request is asked in another run, or the
                # job's concurrency is in other runs' hands): look again at the next count.
                idle = IDLE_WAIT if wait is None else (max(wait, 0.05) if wait > 0 else COUNT_EVERY)
                await asyncio.sleep(min(idle, self.renew_every))
                await aio.db(claims.renew)(self.job_id, self.token, self.claim_seconds)
        finally:
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            await self._count()
        return await aio.db(_status)(self.job_id)

    async def _count(self) -> str:
        """Write the counts of the lines settled since the last time; the job's status."""
        completed, failed, cost = self.counts.take()
        try:
            status, self.runs = await aio.db(claims.add_counts)(
                self.job_id, completed=completed, failed=failed, cost=cost
            )
        except BaseException:
            self.counts.add(completed, failed, cost)  # written next time (or made again from the lines)
            raise
        return status

    async def _done(self, line: Claimed, **settled: Any) -> None:
        if await aio.db(claims.settle_done)(line.id, self.token, count=False, **settled):
            self.counts.add(1, 0, settled["cost"])

    async def _failed(self, line: Claimed, error: dict[str, Any], generation_id: str = "") -> None:
        if await aio.db(claims.settle_failed)(
            line.id, self.token, error=error, generation_id=generation_id, count=False
        ):
            self.counts.add(0, 1, Decimal(0))

    async def _line(self, line: Claimed) -> None:
        try:
            if line.cache_key:
                await self._deduplicated(line)
            else:
                await self._call(line)
        except Exception:
            log.exception("batch %s line %s: unexpected failure", self.job_id, line.number)
            await self._retry_or_fail(line, {"code": "server_error", "message": "orweb failed to run this line."})

    async def _deduplicated(self, line: Claimed) -> None:
        """One upstream call per deterministic request: copy an earlier answer, wait for the line of this
        run already asking, or ask."""
        assert self.job is not None
        while True:
            found = await aio.db(claims.cached_answer)(
                self.job_id, self.job.user_id, line.cache_key, self.job.cache_across_jobs
            )
            if found is not None:
                await self._done(line, response=free_copy(found), generation_id="", cost=Decimal(0), cached=True)
                return
            leader = self.leaders.get(line.cache_key)
            if leader is None:
                break
            await asyncio.shield(leader)
        done = self.leaders[line.cache_key] = asyncio.get_running_loop().create_future()
        try:
            await self._call(line)
        finally:
            del self.leaders[line.cache_key]
            done.set_result(None)

    async def _call(self, line: Claimed) -> None:
        try:
            chat = parse_chat_request(line.request).chat
            completion = await metered.complete(self.user, chat, source="batch", wait_on_rate_limit=False)
        except BudgetExceeded as error:
            await aio.db(claims.requeue)(line.id, self.token, wait=0, counted=False)
            await self._pause(f"Paused: {error.message}")
        except RateLimitExceeded as error:
            await aio.db(claims.requeue)(line.id, self.token, wait=error.retry_after, counted=False)
        except UpstreamFailed as error:
            await self._upstream_failed(line, error)
        except ServiceUnavailable as error:
            await self._retry_or_fail(line, _error_of(error))
        except GatewayError as error:
            await self._failed(line, _error_of(error))
        else:
            result = completion.result
            if result.status == "ok":
                response = completion_json(completion)
                await self._done(line, response=response, generation_id=result.generation_id or "", cost=result.cost)
            else:
                error = {
                    "code": "upstream_error",
                    "message": result.error or "The reply was incomplete.",
                    "status": 502,
                }
                await self._retry_or_fail(line, error, generation_id=result.generation_id or "")

    async def _upstream_failed(self, line: Claimed, error: UpstreamFailed) -> None:
        upstream_status = getattr(error.upstream, "status", None) or error.status
        if upstream_status == 429:
            wait = error.retry_after if error.retry_after is not None else backoff(line.tries)
            await aio.db(claims.requeue)(line.id, self.token, wait=wait, counted=False)
        elif upstream_status == 402:
            await aio.db(claims.requeue)(line.id, self.token, wait=0, counted=False)
            await self._pause(f"Paused: {OUT_OF_CREDITS}")
        elif upstream_status is None or upstream_status >= 500 or upstream_status == 408:
            await self._retry_or_fail(line, _error_of(error))
        else:
            await self._failed(line, _error_of(error))

    async def _retry_or_fail(self, line: Claimed, error: dict[str, Any], generation_id: str = "") -> None:
        if line.tries < settings.ORWEB_BATCH_MAX_TRIES:
            await aio.db(claims.requeue)(line.id, self.token, wait=backoff(line.tries))
        else:
            await self._failed(line, error, generation_id)

    async def _pause(self, reason: str) -> None:
        assert self.job is not None
        self.stopping = True
        with contextlib.suppress(jobs.BadTransition):
            await aio.db(jobs.pause)(self.job, reason)


class Counts:
    """Lines a run settled and has not yet counted into its job (touched on the run's loop only)."""

    def __init__(self) -> None:
        self.completed = self.failed = 0
        self.cost = Decimal(0)

    def add(self, completed: int, failed: int, cost: Decimal) -> None:
        self.completed, self.failed, self.cost = self.completed + completed, self.failed + failed, self.cost + cost

    def take(self) -> tuple[int, int, Decimal]:
        taken = (self.completed, self.failed, self.cost)
        self.completed = self.failed = 0
        self.cost = Decimal(0)
        return taken


def _status(job_id: str) -> str:
    return BatchJob.objects.filter(pk=job_id).values_list("status", flat=True).first() or ""


def _error_of(error: GatewayError) -> dict[str, Any]:
    """The error as stored on the line: OpenAI's error object plus the HTTP status /v1 would answer."""
    status, body, _ = error_response_parts(error)
    return {**body["error"], "status": status}


def backoff(tries: int) -> float:
    """Seconds before trying a line again after its `tries`-th failure: 1, 2, 4, ... up to a minute."""
    return min(MAX_BACKOFF, 2.0 ** max(tries - 1, 0))


def free_copy(response: dict[str, Any]) -> dict[str, Any]:
    """An answer copied from the cache: the same body, at $0."""
    body = copy.deepcopy(response)
    usage = body.get("usage")
    if isinstance(usage, dict):
        usage["cost"] = 0
    return body


def resume_stalled() -> int:
    """Beat's sweep: jobs running with no live run (a worker died, a task was lost) get new runs; jobs
    past their completion window expire; cancelling jobs whose last claims lapsed are cancelled; economy jobs
    whose batch is upstream with no live step get one again. Returns how many jobs were handed to runs
    again."""
    now = timezone.now()
    for job in BatchJob.objects.filter(
        status__in=(BatchJob.Status.IN_PROGRESS, BatchJob.Status.PAUSED), expires_at__lt=now
    ):
        jobs.expire(job)
    for job in BatchJob.objects.filter(status=BatchJob.Status.CANCELLING):
        jobs.finish_cancel(job)
    live = BatchRun.objects.filter(job=OuterRef("pk"), until__gte=now)
    by_line = Q(economy=False, status=BatchJob.Status.IN_PROGRESS) & ~Exists(live)
    # An economy job's batch upstream is polled to its end even after the job was cancelled: it is billed.
    upstream = Q(status=BatchJob.Status.IN_PROGRESS) | Q(remote_state__in=("submitting", "submitted"))
    economy = Q(economy=True) & upstream & (Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    stalled = list(BatchJob.objects.filter(by_line | economy))
    for job in stalled:
        jobs.enqueue(job)
    return len(stalled)

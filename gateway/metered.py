"""The metered path: every model call goes through `complete` or `stream`, in this order:
policy -> rate limit -> budget hold (`gateway.admission`) -> call (retries, fallback chain, on the event
loop) -> settle (`gateway.settlement`).

Admission and settlement are each one short database hop off the loop. If the database or Redis can't be
reached at admission, a call is refused with ServiceUnavailable: nothing is spent that can't be metered.
Between the two, every attempt is journaled (`billing.attempts`): admitted, then each generation id as its
headers arrive. Settling is shielded from cancellation and never fails the caller: a reply upstream answered
is returned, and a charge the database can't take now waits in the journal. So a caller that goes away, a
crash, an outage or a deadlock still pays for what was generated, exactly once.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from billing import attempts
from billing.ledger import Outcome
from gateway import fail_closed, settlement, upstream_calls
from gateway.admission import Admission, admit, admit_key
from gateway.types import CallResult, ChatRequest, Completion
from gateway.upstream_errors import upstream_failed
from openrouter import OpenRouterError
from openrouter.events import Event, Finish, ReasoningDelta, StreamError, TextDelta, ToolCallDelta, Usage
from orweb import aio
from orweb.upstream import get_client

_admit = fail_closed.db(admit)
_admit_key = fail_closed.db(admit_key)
# Not fail-closed: settling never fails the caller (what the database can't take waits in the journal).
_finish = aio.db(settlement.finish)


_abandoning: set[asyncio.Task] = set()


async def _admitted(admitting: Awaitable[Admission]) -> Admission:
    """Wait for admission, which runs in a database thread that a cancelled caller can't stop: if the caller
    leaves meanwhile, whatever gets admitted (hold, stream slot, journal) is given back behind it."""
    task = asyncio.ensure_future(admitting)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_abandon_if_admitted)
        raise


def _abandon_if_admitted(task: asyncio.Future) -> None:
    if task.cancelled() or task.exception() is not None:
        return  # refused or never ran: nothing was admitted
    abandoning = asyncio.ensure_future(abandon(task.result()))
    _abandoning.add(abandoning)
    abandoning.add_done_callback(_abandoning.discard)


async def complete(
    user: Any, request: ChatRequest, *, source: str, api_key: Any = None, wait_on_rate_limit: bool = True
) -> Completion:
    """One non-streaming call through the metered path. `wait_on_rate_limit=False` raises an upstream 429
    at once instead of sleeping out its Retry-After in the call (a batch run requeues the line)."""
    admission = await _admitted(_admit(user, request, source=source, api_key=api_key))
    return await _complete(admission, wait_on_rate_limit=wait_on_rate_limit)


async def complete_with_key(secret: str, request: ChatRequest, *, source: str = "api") -> Completion:
    """`complete` for the holder of a personal API key (InvalidApiKey when it is unknown or revoked)."""
    return await _complete(await _admitted(_admit_key(secret, request, source=source)))


async def _complete(admission: Admission, *, wait_on_rate_limit: bool = True) -> Completion:
    started = time.monotonic()
    try:
        answer = await upstream_calls.call(
            get_client(wait_on_rate_limit=wait_on_rate_limit), admission, _observer(admission)
        )
    except OpenRouterError as error:
        await _finish(admission, settlement.failed(admission, error, started))
        raise upstream_failed(error) from error
    except BaseException:
        await asyncio.shield(_finish(admission, settlement.cancelled_before_answer(admission, started)))
        raise
    result = await asyncio.shield(_finish(admission, settlement.answered(admission, answer, started)))
    reply = upstream_calls.reply_of(answer)
    result.finish_reason = reply["finish_reason"]
    return Completion(**reply, result=result, raw=answer.raw, usage=answer.usage)


def _observer(admission: Admission) -> Callable[[str, str], None]:
    """Journal each generation the moment its headers arrive, before any content (a write to the
    journal file: no database, no thread hop)."""
    return functools.partial(attempts.saw_generation, admission.attempt_id)


def admit_stream(user: Any, request: ChatRequest, *, source: str) -> Admission:
    """Admission for a stream opened later with `stream(..., admission=...)`, by a caller already in a
    database thread: the chat send step admits a reply in the same hop that stores its messages, so the
    upstream call starts without another. Whoever gets an Admission must open it or `abandon` it."""
    with fail_closed.database_reachable():
        return admit(user, request, source=source, slot=uuid.uuid4().hex)


class MeteredStream:
    """`async with metered.stream(user, request, source=...) as call: async for event in call: ...`

    Policy, rate limit and hold happen on entering (GatewayError before any upstream call). Leaving the
    block closes the upstream stream and settles exactly once: "ok" after a finish, "cancelled" when the
    block exits early (break, exception, task cancellation), "error"/"incomplete" after a stream error;
    what was generated is paid for (estimated at catalog price when no usage came, reconciled later).
    """

    def __init__(
        self,
        user: Any,
        request: ChatRequest,
        *,
        source: str,
        api_key: Any = None,
        key_secret: str | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._user = user
        self._key_secret = key_secret
        self._request = request
        self._source = source
        self._api_key = api_key
        self._admission: Admission | None = None
        self._admitted = admission
        self._context: Any = None
        self._events: Any = None
        self._started = 0.0
        self._ttft_ms: int | None = None
        self._pieces: list[str] = []
        self._usage: Usage | None = None
        self._finish_reason: str | None = None
        self._error: OpenRouterError | None = None
        self.result: CallResult | None = None
        self.chosen_model: str | None = None
        self.skipped: list[tuple[str, str]] = []

    async def _admit(self) -> Admission:
        if self._admitted is not None:
            return self._admitted
        slot = uuid.uuid4().hex
        if self._key_secret is not None:
            return await _admitted(_admit_key(self._key_secret, self._request, source=self._source, slot=slot))
        return await _admitted(_admit(self._user, self._request, source=self._source, api_key=self._api_key, slot=slot))

    async def __aenter__(self) -> MeteredStream:
        admission = self._admission = await self._admit()
        self.chosen_model = admission.chosen_model
        self._started = time.monotonic()
        self._context = upstream_calls.open_stream(get_client(), admission, _observer(admission))
        try:
            self._events = await self._context.__aenter__()
        except OpenRouterError as error:
            await self._settle(settlement.failed(admission, error, self._started))
            raise upstream_failed(error) from error
        except BaseException:
            await self._settle(settlement.cancelled_before_answer(admission, self._started))
            raise
        settlement.note_attempts(admission, self._events.attempts)
        self.skipped = admission.skipped
        return self

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> Event:
        event = await self._events.__anext__()
        if isinstance(event, (TextDelta, ReasoningDelta)):
            self._first_token()
            self._pieces.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self._first_token()
            self._pieces.append((event.name or "") + event.arguments)
        elif isinstance(event, Usage):
            self._usage = event
        elif isinstance(event, Finish):
            self._finish_reason = event.reason
        elif isinstance(event, StreamError):
            self._error = event.error
        return event

    def _first_token(self) -> None:
        if self._ttft_ms is None:
            self._ttft_ms = settlement.elapsed_ms(self._started)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self.result is not None or self._admission is None:
            return False  # settled already (or never admitted): a call is settled once, whoever exits
        try:
            await asyncio.shield(self._context.__aexit__(None, None, None))
        finally:
            await self._settle(
                settlement.streamed(
                    self._admission,
                    self._events,
                    error=self._error,
                    finish_reason=self._finish_reason,
                    usage=self._usage,
                    text="".join(self._pieces),
                    ttft_ms=self._ttft_ms,
                    started=self._started,
                )
            )
        return False

    async def _settle(self, outcome: Outcome) -> None:
        assert self._admission is not None
        self.result = await asyncio.shield(_finish(self._admission, outcome))
        self.result.finish_reason = self._finish_reason
        self.skipped = self.result.skipped


def stream(
    user: Any, request: ChatRequest, *, source: str, api_key: Any = None, admission: Admission | None = None
) -> MeteredStream:
    """One streaming call through the metered path (see MeteredStream). With `admission` (from
    `admit_stream`) it goes straight to the call; `request` is then what was admitted."""
    return MeteredStream(user, request, source=source, api_key=api_key, admission=admission)


def stream_with_key(secret: str, request: ChatRequest, *, source: str = "api") -> MeteredStream:
    """`stream` for the holder of a personal API key: the key is checked on entering, with admission."""
    return MeteredStream(None, request, source=source, key_secret=secret)


async def abandon(admission: Admission) -> CallResult:
    """Settle an admission whose call was never made (its reply was stopped first): a cancelled ledger
    entry with nothing spent, its hold and stream slot given back."""
    return await asyncio.shield(_finish(admission, settlement.abandoned(admission)))

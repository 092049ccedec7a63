"""Settlement: the last step of the metered path, however a call ended.

Each way a call can end has its outcome here (answered, streamed, failed, cancelled before an answer,
abandoned before the call); `finish` writes it to the ledger once (`billing.ledger.settle`: charge, release
the hold, roll up), gives back the stream slot and logs one line per call, without keys or content.
Tokens and cost are what OpenRouter reported; when it didn't say, they are counted and priced at the served
model's catalog price, marked estimated and reconciled later. What was generated is paid for.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from billing import attempts
from billing.ledger import Outcome
from billing.models import LedgerEntry
from billing.pricing import estimate
from gateway.admission import Admission
from gateway.tokens import count_text_tokens
from gateway.types import CallResult
from openrouter import ChatResult, EventStream, IdleTimeout, IncompleteStream, OpenRouterError
from openrouter.client import BilledResult
from openrouter.events import Usage
from orweb import metrics

call_log = logging.getLogger("orweb.calls")


def finish(admission: Admission, outcome: Outcome) -> CallResult:
    """Settle the call (every generation it made upstream) and write its log line; give back its stream
    slot. If the database can't take it now, the charge waits in the journal and the caller still gets
    its result (without a ledger id)."""
    outcomes = _with_generations(admission, outcome)
    entries = attempts.settle_attempt(
        admission.attempt_id, outcomes, hold_id=admission.hold_id, user_id=admission.user_id, slot=admission.slot
    )
    final = entries[0] if entries else outcome
    result = CallResult(
        ledger_id=entries[0].pk if entries else None,
        status=final.status,
        requested_model=final.requested_model,
        served_model=final.served_model,
        provider=final.provider,
        prompt_tokens=final.prompt_tokens,
        completion_tokens=final.completion_tokens,
        cost=final.cost,
        cost_source=final.cost_source,
        ttft_ms=final.ttft_ms,
        latency_ms=final.latency_ms,
        generation_id=final.generation_id or None,
        error=final.error or None,
        skipped=list(admission.skipped),
    )
    _log_call(admission, result)
    return result


def _with_generations(admission: Admission, outcome: Outcome) -> list[Outcome]:
    """The outcome first, then one for every other generation the call made upstream (a try that was
    retried or fell back after its headers came): each may be billed, so each gets its ledger row, priced
    from OpenRouter's `/generation` by reconciliation. An outcome that never learned its generation takes
    the last one seen."""
    seen = attempts.generations(admission.attempt_id)
    outcome.call_id = admission.attempt_id
    if not outcome.generation_id and seen:
        outcome.generation_id, model = seen[-1]
        outcome.served_model = outcome.served_model or model
        outcome.cost_source = LedgerEntry.CostSource.ESTIMATED
    others = [
        _outcome(
            admission,
            LedgerEntry.Status.ERROR,
            served_model=model,
            generation_id=generation_id,
            cost_source=LedgerEntry.CostSource.ESTIMATED,
            error="retried upstream",
        )
        for generation_id, model in seen
        if generation_id != outcome.generation_id
    ]
    return [outcome, *others]


def _log_call(admission: Admission, result: CallResult) -> None:
    call_log.info(
        "call user=%s source=%s requested=%s served=%s status=%s ttft_ms=%s latency_ms=%s "
        "prompt_tokens=%s completion_tokens=%s cost=%s cost_source=%s generation=%s",
        admission.user_id,
        admission.source,
        admission.requested_model,
        result.served_model or "-",
        result.status,
        result.ttft_ms if result.ttft_ms is not None else "-",
        result.latency_ms,
        result.prompt_tokens,
        result.completion_tokens,
        result.cost,
        result.cost_source,
        result.generation_id or "-",
    )
    metrics.observe_call(admission.source, result)


def elapsed_ms(started: float) -> int:
    """Milliseconds since `started` (a `time.monotonic()` reading)."""
    return max(0, round((time.monotonic() - started) * 1000))


def note_attempts(admission: Admission, attempts: list[tuple[str, OpenRouterError]]) -> None:
    """Remember the models upstream tried and gave up on, with why (shown as the call's `skipped`)."""
    admission.skipped += [(model, str(error)) for model, error in attempts if model]


def _outcome(admission: Admission, status: str, **fields: Any) -> Outcome:
    return Outcome(
        user_id=admission.user_id,
        source=admission.source,
        api_key_id=admission.api_key_id,
        requested_model=admission.requested_model,
        status=status,
        **fields,
    )


def _usage(admission: Admission, served: str, usage: Usage | None, text: str) -> dict[str, Any]:
    """Tokens and cost: reported when upstream said, else estimated at the served model's catalog price."""
    if usage is not None:
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
    else:
        prompt, completion = admission.shape.prompt_tokens, count_text_tokens(text)
    if usage is not None and usage.cost is not None:
        cost, source = usage.cost, LedgerEntry.CostSource.REPORTED
    else:
        cost, source = estimate(admission.model(served), prompt, completion), LedgerEntry.CostSource.ESTIMATED
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": usage.cached_tokens if usage else 0,
        "reasoning_tokens": usage.reasoning_tokens if usage else 0,
        "cache_write_tokens": usage.cache_write_tokens if usage else 0,
        "cost_details": cost_details(usage),
        "cost": cost,
        "cost_source": source,
    }


def cost_details(usage: Usage | None) -> dict[str, Any]:
    """What the ledger keeps of OpenRouter's breakdown: `cost_details` as reported (decimal strings) and,
    when a server tool ran, `server_tool_use_details` (such as {"web_search_requests": 1})."""
    if usage is None:
        return {}
    details: dict[str, Any] = dict(usage.cost_details)
    if usage.server_tool_use:
        details["server_tool_use_details"] = dict(usage.server_tool_use)
    return details


def failed(admission: Admission, error: OpenRouterError, started: float) -> Outcome:
    """The call failed before any answer (after retries and fallbacks): nothing generated, nothing paid."""
    note_attempts(admission, error.attempts[:-1])
    return _outcome(admission, LedgerEntry.Status.ERROR, error=str(error), latency_ms=elapsed_ms(started))


def cancelled_before_answer(admission: Admission, started: float) -> Outcome:
    """The caller went away while the call was being made."""
    return _outcome(
        admission, LedgerEntry.Status.CANCELLED, error="cancelled before an answer", latency_ms=elapsed_ms(started)
    )


def abandoned(admission: Admission) -> Outcome:
    """The call was never made (its reply was stopped first)."""
    return _outcome(admission, LedgerEntry.Status.CANCELLED, error="cancelled before the call", latency_ms=0)


def answered(admission: Admission, answer: ChatResult | BilledResult, started: float) -> Outcome:
    """A finished non-streaming call (a chat completion, embeddings or a response)."""
    note_attempts(admission, answer.attempts)
    text = ""
    if isinstance(answer, ChatResult):
        calls = answer.tool_calls
        text = answer.content + (answer.reasoning or "")
        text += "".join(str((c.get("function") or {}).get("arguments") or "") for c in calls)
    return _outcome(
        admission,
        LedgerEntry.Status.OK,
        served_model=answer.model,
        provider=answer.provider or "",
        generation_id=answer.generation_id or None,
        latency_ms=elapsed_ms(started),
        **_usage(admission, answer.model, answer.usage, text),
    )


def streamed(
    admission: Admission,
    events: EventStream,
    *,
    error: OpenRouterError | None,
    finish_reason: str | None,
    usage: Usage | None,
    text: str,
    ttft_ms: int | None,
    started: float,
) -> Outcome:
    """A stream that was opened, however it ended: "error"/"incomplete" after a stream error, "ok" after a
    finish, else "cancelled" (stopped by the caller)."""
    if error is not None:
        incomplete = isinstance(error, (IncompleteStream, IdleTimeout))
        status = LedgerEntry.Status.INCOMPLETE if incomplete else LedgerEntry.Status.ERROR
        why = str(error)
    elif finish_reason is not None:
        status, why = LedgerEntry.Status.OK, ""
    else:
        status, why = LedgerEntry.Status.CANCELLED, "stopped by the caller"
    return _outcome(
        admission,
        status,
        served_model=events.model,
        provider=events.provider or "",
        generation_id=events.generation_id or None,
        error=why,
        ttft_ms=ttft_ms,
        latency_ms=elapsed_ms(started),
        **_usage(admission, events.model, usage, text),
    )

"""Calls through the metered path: what is settled for each way a call can end."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from decimal import Decimal

import pytest

from billing.budgets import set_budget
from billing.models import BudgetPeriod, DailyUsage, Hold, LedgerEntry, RateLimit
from billing.reconcile import reconcile_pending
from gateway import metered
from openrouter import Finish, Started, StreamError, TextDelta
from orweb.errors import GatewayError, UpstreamFailed
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import ask, in_thread, upstream_calls

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def budgeted(owner):
    set_budget(user=owner, amount=Decimal("5"))
    return owner


def _entries():
    return list(LedgerEntry.objects.order_by("pk"))


def _period():
    return BudgetPeriod.objects.get()


async def test_a_completion_is_settled_with_the_reported_cost(simulator, catalog, budgeted):
    completion = await metered.complete(budgeted, ask(), source="chat")
    [entry] = await in_thread(_entries)()
    assert completion.content == "hello there"
    assert entry.status == "ok" and entry.cost_source == "reported"
    assert entry.cost == completion.result.cost > 0
    assert Decimal(str(simulator.stats().get("data", simulator.stats())["usage"])) == entry.cost
    assert entry.served_model == "openai/gpt-4o-mini" and entry.generation_id.startswith("gen-")
    period = await in_thread(_period)()
    assert period.spent == entry.cost and period.held == 0
    rollup = await in_thread(DailyUsage.objects.get)()
    assert (rollup.requests, rollup.errors, rollup.cost) == (1, 0, entry.cost)


async def test_a_stream_is_settled_once_with_time_to_first_token(simulator, catalog, budgeted):
    async with metered.stream(budgeted, ask("echo: one two three"), source="chat") as call:
        events = [event async for event in call]
    assert isinstance(events[0], Started)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three"
    assert any(isinstance(e, Finish) for e in events)
    [entry] = await in_thread(_entries)()
    assert call.result.ledger_id == entry.pk and entry.status == "ok" and entry.cost_source == "reported"
    assert entry.ttft_ms is not None and entry.latency_ms >= entry.ttft_ms
    assert (await in_thread(_period)()).held == 0


async def test_leaving_a_stream_twice_settles_it_once(simulator, catalog, budgeted):
    async with metered.stream(budgeted, ask(), source="chat") as call:
        [event async for event in call]
    await call.__aexit__(None, None, None)
    [entry] = await in_thread(_entries)()
    assert entry.cost == call.result.cost > 0
    await in_thread(assert_ledger_matches_simulator)(simulator)


async def test_leaving_a_stream_that_was_never_admitted_settles_nothing(simulator, catalog, budgeted):
    call = metered.stream(budgeted, ask(), source="chat")
    assert await call.__aexit__(None, None, None) is False
    assert await in_thread(_entries)() == []


async def test_a_stopped_stream_pays_what_was_generated(simulator, catalog, budgeted):
    async with metered.stream(budgeted, ask("write a story [[sim tokens=400 tps=200]]"), source="chat") as call:
        async for event in call:
            if isinstance(event, TextDelta) and event.text.strip():
                break
    [entry] = await in_thread(_entries)()
    assert entry.status == "cancelled"
    assert entry.cost_source == "estimated" and entry.cost > 0
    assert entry.completion_tokens >= 1 and entry.generation_id
    period = await in_thread(_period)()
    assert period.held == 0 and period.spent == entry.cost


async def test_a_cancelled_task_settles_its_stream(simulator, catalog, budgeted):
    started = asyncio.Event()

    async def consume():
        async with metered.stream(budgeted, ask("story [[sim tokens=400 tps=50]]"), source="chat") as call:
            async for event in call:
                if isinstance(event, TextDelta):
                    started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [entry] = await in_thread(_entries)()
    assert entry.status == "cancelled" and entry.cost > 0
    assert (await in_thread(_period)()).held == 0


async def test_a_mid_stream_error_settles_as_error(simulator, catalog, budgeted):
    async with metered.stream(budgeted, ask("story [[sim tokens=100 error_after=5]]"), source="chat") as call:
        events = [event async for event in call]
    assert isinstance(events[-1], StreamError)
    [entry] = await in_thread(_entries)()
    assert entry.status == "error" and entry.completion_tokens >= 1 and entry.cost > 0
    rollup = await in_thread(DailyUsage.objects.get)()
    assert rollup.errors == 1


async def test_a_dropped_stream_settles_as_incomplete(simulator, catalog, budgeted):
    async with metered.stream(budgeted, ask("story [[sim tokens=100 drop_after=5]]"), source="chat") as call:
        [event async for event in call]
    [entry] = await in_thread(_entries)()
    assert entry.status == "incomplete" and entry.cost_source == "estimated" and entry.cost > 0


async def test_a_503_falls_back_to_the_next_model_and_the_ledger_shows_it(simulator, catalog, budgeted):
    simulator.fault("openai/gpt-4o-mini", "status=503")
    request = ask(fallback_models=["anthropic/claude-3-haiku"])
    completion = await metered.complete(budgeted, request, source="api")
    [entry] = await in_thread(_entries)()
    assert entry.served_model == completion.result.served_model == "anthropic/claude-3-haiku"
    assert entry.requested_model == "openai/gpt-4o-mini"
    assert completion.result.skipped and completion.result.skipped[0][0] == "openai/gpt-4o-mini"


async def test_a_stream_falls_back_too(simulator, catalog, budgeted):
    simulator.fault("openai/gpt-4o-mini", "status=503")
    async with metered.stream(budgeted, ask(fallback_models=["anthropic/claude-3-haiku"]), source="chat") as call:
        events = [event async for event in call]
    assert events[0].model == "anthropic/claude-3-haiku"
    assert call.result.served_model == "anthropic/claude-3-haiku"


async def test_a_call_failing_before_any_generation_costs_nothing_but_counts_as_an_error(simulator, catalog, budgeted):
    with pytest.raises(UpstreamFailed) as failed:
        await metered.complete(budgeted, ask("hi [[sim status=400]]"), source="api")
    assert failed.value.status == 400
    [entry] = await in_thread(_entries)()
    assert (entry.status, entry.cost, entry.cost_source, entry.generation_id) == ("error", 0, "none", None)
    rollup = await in_thread(DailyUsage.objects.get)()
    assert (rollup.requests, rollup.errors, rollup.cost) == (1, 1, 0)
    period = await in_thread(_period)()
    assert (period.spent, period.held) == (0, 0)
    assert await in_thread(Hold.objects.filter(released_at=None).count)() == 0


async def test_a_stream_that_fails_to_start_is_settled_and_raised(simulator, catalog, budgeted):
    with pytest.raises(UpstreamFailed) as failed:
        async with metered.stream(budgeted, ask("hi [[sim status=403]]"), source="chat"):
            pass
    assert failed.value.status == 403
    [entry] = await in_thread(_entries)()
    assert entry.status == "error" and entry.cost == 0


async def test_the_call_log_has_no_key_and_no_content(simulator, catalog, owner, caplog):
    caplog.set_level(logging.INFO, logger="orweb.calls")
    await metered.complete(owner, ask("echo: a secret plan"), source="api")
    [line] = [r.getMessage() for r in caplog.records if r.name == "orweb.calls"]
    assert f"user={owner.pk}" in line and "status=ok" in line and "cost=" in line and "ttft_ms=" in line
    assert "secret plan" not in line
    assert "sk-or" not in line


async def test_refusals_reach_no_upstream(simulator, catalog, owner):
    await in_thread(set_budget)(user=owner, amount=Decimal("0"))
    with pytest.raises(GatewayError):
        await metered.complete(owner, ask(), source="api")
    assert upstream_calls(simulator) == 0


async def _cancel_once_upstream_has_it(simulator, task: asyncio.Task) -> None:
    """Cancel `task` while its request is at the simulator, before any answer came back."""
    while not await asyncio.to_thread(upstream_calls, simulator):
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _settled_as_billed_though_cancelled_before_an_answer(simulator) -> None:
    """The caller left before any answer, but upstream had started a generation: its id was learned from the
    headers (awaited for a moment after the cancel), so the ledger pays what upstream billed for it."""
    [entry] = await in_thread(_entries)()
    assert (entry.status, entry.error) == ("cancelled", "cancelled before an answer")
    assert entry.generation_id and entry.cost_source == "estimated"

    def reconciled() -> None:
        while reconcile_pending(settle_delay=dt.timedelta(0)) == 0:
            time.sleep(0.05)

    await in_thread(reconciled)()
    await in_thread(assert_ledger_matches_simulator)(simulator)
    period = await in_thread(_period)()
    [entry] = await in_thread(_entries)()
    assert (period.spent, period.held) == (entry.cost, 0) and entry.cost > 0


async def test_a_completion_cancelled_before_its_answer_pays_what_upstream_billed(simulator, catalog, budgeted):
    task = asyncio.create_task(metered.complete(budgeted, ask("hi [[sim first_byte_delay=1]]"), source="chat"))
    await _cancel_once_upstream_has_it(simulator, task)
    await _settled_as_billed_though_cancelled_before_an_answer(simulator)


async def test_a_stream_cancelled_before_its_answer_pays_what_upstream_billed(simulator, catalog, budgeted):
    async def consume():
        async with metered.stream(budgeted, ask("hi [[sim first_byte_delay=1]]"), source="chat") as call:
            [event async for event in call]

    await _cancel_once_upstream_has_it(simulator, asyncio.create_task(consume()))
    await _settled_as_billed_though_cancelled_before_an_answer(simulator)


async def test_a_stream_admitted_ahead_is_called_and_settled_at_what_was_billed(simulator, catalog, budgeted):
    request = ask("echo: one two three")
    admission = await in_thread(metered.admit_stream)(budgeted, request, source="chat")
    assert (await in_thread(_period)()).held > 0
    async with metered.stream(budgeted, request, source="chat", admission=admission) as call:
        [event async for event in call]
    [entry] = await in_thread(_entries)()
    [(generation_id, generation)] = simulator.app.state.sim.generations.items()
    assert entry.status == "ok" and entry.generation_id == generation_id and entry.cost == generation.cost
    period = await in_thread(_period)()
    assert (period.spent, period.held) == (entry.cost, 0)


async def test_an_abandoned_admission_gives_back_its_hold_and_stream_slot(simulator, catalog, budgeted):
    await in_thread(RateLimit.objects.create)(user=budgeted, concurrent_streams=1)
    admission = await in_thread(metered.admit_stream)(budgeted, ask(), source="chat")
    result = await metered.abandon(admission)
    assert (result.status, result.cost, result.error) == ("cancelled", 0, "cancelled before the call")
    assert upstream_calls(simulator) == 0
    assert (await in_thread(_period)()).held == 0
    async with metered.stream(budgeted, ask(), source="chat") as again:
        [event async for event in again]
    assert again.result.status == "ok"

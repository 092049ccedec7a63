"""Failures before any content are still paid for when OpenRouter billed them: every try that got response
headers has its generation id in the ledger, retried ones too, priced from `/generation` by reconciliation;
a try that got nothing is settled at $0 with the reason. Each test ends with the ledger equal to what the
simulator billed, by generation id, and no hold left."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from billing.budgets import current_period, set_budget
from billing.models import BudgetPeriod, LedgerEntry
from billing.reconcile import reconcile_pending
from gateway import metered
from orweb.devstack import free_port
from orweb.errors import ServiceUnavailable, UpstreamFailed
from tests.conftest import database_url
from tests.helpers.billing import assert_ledger_matches_simulator, wait_for_reconciled
from tests.helpers.metering import ask, in_thread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def budgeted(owner):
    set_budget(user=owner, amount=Decimal("5"))
    return owner


async def _books_balance(simulator) -> list[LedgerEntry]:
    """Reconcile as the worker would, then compare the ledger with the simulator."""
    billed = await asyncio.to_thread(simulator.billed)

    def reconciled() -> None:
        for _ in range(100):
            reconcile_pending(settle_delay=dt.timedelta(0))
            if not LedgerEntry.objects.filter(cost_source="estimated").exists():
                break
        wait_for_reconciled(timeout=1)

    await in_thread(reconciled)()
    await in_thread(assert_ledger_matches_simulator)(simulator)
    assert billed, "the simulator billed nothing: the test did not reach upstream"
    return await in_thread(lambda: list(LedgerEntry.objects.order_by("pk")))()


async def test_a_stream_stalled_before_its_first_token_costs_nothing_on_any_try(simulator, catalog, budgeted, settings):
    settings.OPENROUTER_IDLE_TIMEOUT = 0.3
    with pytest.raises(UpstreamFailed):
        async with metered.stream(budgeted, ask("hi [[sim stall=5]]"), source="api") as call:
            [event async for event in call]
    entries = await _books_balance(simulator)
    assert len(entries) == 3  # the first try and two retries, each with its own row
    # No completion token and no finish reason: OpenRouter charges nothing, so each row settles at $0.
    assert {entry.status for entry in entries} == {"error"} and all(entry.cost == 0 for entry in entries)


async def test_a_non_stream_answer_that_times_out_is_paid_for_in_full(simulator, catalog, budgeted, settings):
    settings.OPENROUTER_ANSWER_TIMEOUT = 0.3
    simulator.configure(tps=10)
    with pytest.raises(UpstreamFailed) as failure:
        await metered.complete(budgeted, ask("a story [[sim tokens=20]]"), source="api")
    assert failure.value.status == 504
    entries = await _books_balance(simulator)
    assert len(entries) == 3
    assert all(entry.completion_tokens == 20 and entry.cost_source == "reconciled" for entry in entries)


async def test_a_malformed_non_stream_answer_is_paid_for(simulator, catalog, budgeted):
    with pytest.raises(UpstreamFailed):
        await metered.complete(budgeted, ask("hello [[sim malformed_after=1]]"), source="api")
    [entry] = await _books_balance(simulator)
    assert entry.status == "error" and entry.cost > 0 and entry.generation_id


async def test_errors_retried_before_the_first_token_each_keep_their_generation(simulator, catalog, budgeted):
    simulator.fault("openai/gpt-4o-mini", "error_after=0")
    request = ask("hi", model="openai/gpt-4o-mini", fallback_models=["openai/gpt-4o"])
    async with metered.stream(budgeted, request, source="api") as call:
        [event async for event in call]
    entries = await _books_balance(simulator)
    assert call.result.status == "ok" and call.result.served_model == "openai/gpt-4o"
    assert sorted(entry.status for entry in entries) == ["error", "error", "error", "ok"]
    assert len({entry.generation_id for entry in entries}) == 4


async def test_a_non_stream_call_whose_caller_leaves_is_paid_for_in_full(simulator, catalog, budgeted):
    simulator.configure(tps=20)
    task = asyncio.create_task(metered.complete(budgeted, ask("a story [[sim tokens=30]]"), source="api"))
    while not simulator.control("GET", "billed").json()["in_flight"]:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # the headers (and the generation id) are in
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [entry] = await _books_balance(simulator)
    assert entry.status == "cancelled" and entry.completion_tokens == 30


async def test_a_call_that_reached_nothing_is_settled_at_zero_with_the_reason(simulator, catalog, budgeted, settings):
    settings.OPENROUTER_BASE_URL = f"http://127.0.0.1:{free_port()}/api/v1"  # nothing listens there
    with pytest.raises(UpstreamFailed):
        await metered.complete(budgeted, ask(), source="api")
    [entry] = await in_thread(lambda: list(LedgerEntry.objects.all()))()
    assert (entry.generation_id, entry.cost, entry.status) == (None, 0, "error")
    assert "Could not reach OpenRouter" in entry.error
    period = await in_thread(BudgetPeriod.objects.get)()
    assert (period.held, period.spent) == (0, 0)


async def test_a_caller_that_leaves_while_being_admitted_leaves_nothing_held(simulator, catalog, budgeted):
    """Admission waits on the budget's row, locked by another transaction; the caller gives up meanwhile.
    When admission goes through, what it took is given back at once, and upstream is never called."""
    period = await in_thread(lambda: current_period(budgeted.budget))()
    with psycopg.connect(database_url(connection.settings_dict), autocommit=False) as locker:
        locker.execute("SELECT 1 FROM billing_budgetperiod WHERE id = %s FOR UPDATE", [period.pk])
        task = asyncio.create_task(metered.complete(budgeted, ask(), source="api"))
        while not await in_thread(_waiting_on_a_lock)():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        locker.rollback()
    deadline = time.monotonic() + 10
    while not await in_thread(lambda: LedgerEntry.objects.exists())():
        assert time.monotonic() < deadline, "the admitted call was never given back"
        await asyncio.sleep(0.05)
    [entry] = await in_thread(lambda: list(LedgerEntry.objects.all()))()
    assert (entry.status, entry.error, entry.cost) == ("cancelled", "cancelled before the call", 0)
    period = await in_thread(BudgetPeriod.objects.get)()
    assert (period.held, period.spent) == (0, 0)
    assert simulator.stats()["requests_total"] == 0


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


async def test_a_call_that_cannot_be_journaled_is_refused_with_its_hold_given_back(
    simulator, catalog, budgeted, settings, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.ORWEB_JOURNAL_DIR = str(blocker / "journal")
    with pytest.raises(ServiceUnavailable):
        await metered.complete(budgeted, ask(), source="api")
    assert not await in_thread(BudgetPeriod.objects.filter(held__gt=0).exists)()
    assert simulator.stats()["requests_total"] == 0


async def test_a_refused_admission_whose_caller_left_has_nothing_to_give_back():
    refused = asyncio.get_running_loop().create_future()
    refused.set_exception(ServiceUnavailable("The database can't be reached right now; try again soon."))
    metered._abandon_if_admitted(refused)
    assert not metered._abandoning
    refused.exception()  # retrieved: no "never retrieved" warning

"""Shared by the money tests: what the ledger holds against what the simulator billed, and the rate limits
that apply to a user read the way admission reads them."""

from __future__ import annotations

import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from django.conf import settings
from django.db.models import Q

from billing.models import Hold, LedgerEntry, RateLimit
from billing.ratelimit import Limits, limits_from

EXACT = Decimal("1e-10")  # the ledger keeps 10 decimal places


def billed(simulator: Any, generation_id: str, wait: float = 5.0) -> Decimal:
    """What the simulator billed for one generation, from its `/generation` answer (as reconciliation reads).
    Like OpenRouter, it answers 404 for a moment after a generation ends: that is waited out."""
    deadline = time.monotonic() + wait
    while True:
        response = httpx.get(
            f"{simulator.base_url}/generation",
            params={"id": generation_id},
            headers={"Authorization": f"Bearer {settings.OPENROUTER_API_KEY}"},
            timeout=10,
        )
        if response.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    response.raise_for_status()
    return Decimal(str(response.json()["data"]["total_cost"]))


def assert_ledger_matches_simulator(simulator: Any, *, unread: int = 0) -> None:
    """The ledger holds exactly the generations the simulator billed, by generation id, each at the exact
    cost billed (to the ledger's 10 places, rounded as PostgreSQL rounds), and no hold is left open.

    `unread`: how many generations may be missing because a process was killed after sending their request
    and before reading the response's headers, the only place that names a generation (each such call is a
    $0 row "... stopped before an answer"; the daily books check shows its cost as drift).

    A pure check: estimated rows must have been reconciled first (`wait_for_reconciled`); the simulator's
    own in-flight generations are waited for by `simulator.billed()`."""
    charged = {gid: cost.quantize(EXACT, ROUND_HALF_UP) for gid, cost in simulator.billed().items()}
    entries = {entry.generation_id: entry for entry in LedgerEntry.objects.exclude(generation_id=None)}
    missing, unbilled = sorted(charged.keys() - entries.keys()), sorted(entries.keys() - charged.keys())
    assert len(missing) <= unread and not unbilled, (
        f"billed, not in the ledger: {missing}; in the ledger, not billed: {unbilled}"
    )
    wrong = {
        gid: {"ledger": entry.cost, "billed": charged[gid], "cost_source": entry.cost_source}
        for gid, entry in entries.items()
        if entry.cost != charged[gid]
    }
    assert not wrong, f"charged differently from what was billed: {wrong}"
    open_holds = list(Hold.objects.filter(released_at=None).values_list("id", "amount", "created"))
    assert not open_holds, f"holds left open: {open_holds}"


def wait_for_reconciled(timeout: float = 30.0) -> None:
    """Wait until no ledger row's cost is still an estimate (reconciliation runs elsewhere: a worker, a task
    the test started); fails naming the rows that remain."""
    deadline = time.monotonic() + timeout
    while True:
        estimated = list(
            LedgerEntry.objects.filter(cost_source=LedgerEntry.CostSource.ESTIMATED).values_list("pk", "generation_id")
        )
        if not estimated:
            return
        assert time.monotonic() < deadline, f"still estimated after {timeout} s (pk, generation id): {estimated}"
        time.sleep(0.1)


def effective_limits(user: Any) -> Limits:
    """The limits of `user`: their own RateLimit row and their groups', as admission loads them."""
    return limits_from(list(RateLimit.objects.filter(Q(user=user) | Q(group__user=user))))

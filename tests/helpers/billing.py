"""Shared by the money tests: what the ledger holds against what the simulator billed, and the rate limits
that apply to a user read the way admission reads them."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.db.models import Q

from billing.models import LedgerEntry, RateLimit
from billing.ratelimit import Limits, limits_from

EXACT = Decimal("1e-10")  # the ledger keeps 10 decimal places; the simulator's JSON has a float


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


def assert_ledger_matches_simulator(simulator: Any) -> None:
    """Every generation the simulator billed has one ledger row, charged what was billed for it."""
    entries = {entry.generation_id: entry for entry in LedgerEntry.objects.exclude(generation_id=None)}
    stats = simulator.stats()
    assert len(entries) == stats.get("data", stats)["generations"], "a billed generation is missing from the ledger"
    for generation_id, entry in entries.items():
        assert abs(entry.cost - billed(simulator, generation_id)) < EXACT, (generation_id, entry.cost_source)


def effective_limits(user: Any) -> Limits:
    """The limits of `user`: their own RateLimit row and their groups', as admission loads them."""
    return limits_from(list(RateLimit.objects.filter(Q(user=user) | Q(group__user=user))))

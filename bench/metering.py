"""Time the metering of one call against the real PostgreSQL: the bare hold + settle, and the journaled
path every call takes since the attempts journal (hold, journal the attempt, journal its generation id,
settle with deadlock retries, journal it done), interleaved in one run so both see the same machine.

    DATABASE_URL=... SECRET_KEY=x python bench/metering.py [ITERATIONS]

Uses a throwaway user with a user and a group budget (the common case: two periods locked), prints
p50/p99 in ms of each, and removes what it wrote. The bar (issue 9): journaled p50 <= 2 ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402

from billing import attempts  # noqa: E402
from billing.budgets import set_budget  # noqa: E402
from billing.holds import place_hold  # noqa: E402
from billing.ledger import Outcome, settle  # noqa: E402
from billing.models import DailyUsage, Hold, LedgerEntry  # noqa: E402


def one_call(user, name: str, journaled: bool) -> float:
    """Milliseconds to meter one call (what the metered path does around the upstream call)."""
    started = time.perf_counter()
    hold = place_hold(user, Decimal("0.0123"))
    outcome = Outcome(
        user_id=user.pk,
        source="api",
        requested_model="bench/model",
        served_model="bench/model",
        status="ok",
        cost=Decimal("0.0042"),
        cost_source="reported",
        generation_id=f"{name}-{uuid.uuid4().hex}",
        prompt_tokens=100,
        completion_tokens=50,
    )
    if journaled:
        attempt = attempts.begin(
            user_id=user.pk, source="api", api_key_id=None, requested_model="bench/model", hold_id=hold.pk, slot=None
        )
        attempts.saw_generation(attempt, outcome.generation_id, "bench/model")
        outcome.call_id = attempt
        attempts.settle_attempt(attempt, [outcome], hold_id=hold.pk, user_id=user.pk, slot=None)
    else:
        settle(outcome, hold_id=hold.pk)
    return (time.perf_counter() - started) * 1000


def summary(label: str, timings: list[float]) -> tuple[float, str]:
    timings = sorted(timings)
    p50 = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return p50, f"{label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms"


def time_both(iterations: int) -> tuple[list[float], list[float]]:
    """(bare, journaled) timings of `iterations` calls each, interleaved, for a throwaway user."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    user = get_user_model().objects.create_user(name)
    group = Group.objects.create(name=name)
    group.user_set.add(user)
    set_budget(user=user, amount=Decimal("1000000"))
    set_budget(group=group, amount=Decimal("1000000"))
    bare: list[float] = []
    journaled: list[float] = []
    try:
        for i in range(iterations):
            for flag, timings in ((False, bare), (True, journaled)) if i % 2 else ((True, journaled), (False, bare)):
                timings.append(one_call(user, name, flag))
    finally:
        LedgerEntry.objects.filter(user=user).delete()
        DailyUsage.objects.filter(user=user).delete()
        Hold.objects.filter(user=user).delete()
        group.delete()
        user.delete()
    return bare, journaled


def main(iterations: int) -> None:
    call_command("migrate", verbosity=0)
    bare, journaled = time_both(iterations)
    _, bare_line = summary("hold + settle (before the journal)", bare)
    p50, journaled_line = summary("hold + journal + settle (now)", journaled)
    print(f"over {iterations} calls each (load average {os.getloadavg()[0]:.2f}):")
    print(f"  {bare_line}")
    print(f"  {journaled_line}")
    print(f"  metering p50 <= 2 ms: {p50:.2f} ms {'OK' if p50 <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)

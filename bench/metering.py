"""Time the metering of one call (budget hold + settle) against the real PostgreSQL.

    DATABASE_URL=... SECRET_KEY=x python bench/metering.py [ITERATIONS]

Uses a throwaway user with a user and a group budget (the common case: two periods locked), runs
place_hold + settle ITERATIONS times, prints p50/p99 in ms, and removes what it wrote.
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

from billing.budgets import set_budget  # noqa: E402
from billing.holds import place_hold  # noqa: E402
from billing.ledger import Outcome, settle  # noqa: E402
from billing.models import DailyUsage, Hold, LedgerEntry  # noqa: E402


def main(iterations: int) -> None:
    call_command("migrate", verbosity=0)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    user = get_user_model().objects.create_user(name)
    group = Group.objects.create(name=name)
    group.user_set.add(user)
    set_budget(user=user, amount=Decimal("1000000"))
    set_budget(group=group, amount=Decimal("1000000"))
    timings = []
    try:
        for i in range(iterations):
            started = time.perf_counter()
            hold = place_hold(user, Decimal("0.0123"))
            settle(
                Outcome(
                    user_id=user.pk,
                    source="api",
                    requested_model="bench/model",
                    served_model="bench/model",
                    status="ok",
                    cost=Decimal("0.0042"),
                    cost_source="reported",
                    generation_id=f"{name}-{i}",
                    prompt_tokens=100,
                    completion_tokens=50,
                ),
                hold_id=hold.pk,
            )
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        LedgerEntry.objects.filter(user=user).delete()
        DailyUsage.objects.filter(user=user).delete()
        Hold.objects.filter(user=user).delete()
        group.delete()
        user.delete()
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    print(
        f"hold+settle over {iterations} calls: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"(load average {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)

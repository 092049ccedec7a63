"""kill -9 of a Celery worker holding reconciliations: the worker started in its place reconciles them all
at once (it sweeps on start), instead of the tasks sitting unacknowledged until the broker gives them back."""

from __future__ import annotations

import pytest
import redis
from asgiref.sync import async_to_sync
from django.utils import timezone

from billing.models import LedgerEntry
from gateway import metered
from tests.faults.conftest import wait_until
from tests.helpers.billing import assert_ledger_matches_simulator, wait_for_reconciled
from tests.helpers.metering import ask

pytestmark = pytest.mark.django_db(transaction=True)


def test_reconciliations_held_by_a_killed_worker_are_done_by_the_next(
    start_worker, simulator, catalog, owner, settings
):
    first = start_worker(ready=True)  # taking tasks before their 5 s countdown ends: they wait in its hands

    async def estimated_call() -> None:
        async with metered.stream(owner, ask("a story [[sim no_usage=1 tokens=20]]"), source="api") as call:
            [event async for event in call]

    for _ in range(4):
        async_to_sync(estimated_call)()
    assert LedgerEntry.objects.filter(cost_source="estimated").count() == 4

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    wait_until(lambda: broker.hlen("unacked") >= 4, 30, "the worker never took the reconciliations")
    first.kill()
    first.wait(10)
    assert broker.hlen("unacked") >= 4  # held by a dead worker: the broker won't give them back for a while

    oldest = LedgerEntry.objects.order_by("created").first().created
    wait_until(lambda: (timezone.now() - oldest).total_seconds() > 6, 10, "clock")  # past the sweep's settle delay
    start_worker()
    wait_for_reconciled(timeout=60)
    assert_ledger_matches_simulator(simulator)

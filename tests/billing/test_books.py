"""Books that balance: the ledger's day beside OpenRouter's `usage_daily` for the key, against the simulator.

Unattributed upstream usage is made the way it happens in life: a call straight to the simulator that the
gateway never saw (so the test holds whether `/key` counts per UTC day or since the simulator's reset).
"""

from __future__ import annotations

import socket
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.core import mail

from billing.books import check_books, threshold
from billing.ledger import Outcome, settle
from billing.models import BooksCheck, LedgerEntry
from billing.tasks import books_balance
from gateway import metered
from orweb.schedules import BEAT_SCHEDULE
from tests.helpers.billing import EXACT, assert_ledger_matches_simulator, billed
from tests.helpers.metering import ask

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _staff_addresses(staff, django_user_model) -> None:
    """Drift is mailed to active staff with an address: one has it, one has none, a member is not told."""
    staff.email = "stella@example.com"
    staff.save()
    django_user_model.objects.create_user("quiet", password="x", is_staff=True)
    django_user_model.objects.create_user("member", password="x", email="member@example.com")


def _metered_calls(owner) -> None:
    async def run():
        await metered.complete(owner, ask("echo: one two three"), source="chat")
        async with metered.stream(owner, ask("a short story [[sim tokens=40]]"), source="api") as call:
            [event async for event in call]

    async_to_sync(run)()


def _unattributed_call(simulator) -> str:
    """A generation billed to the key that orweb never heard of; its id."""
    response = httpx.post(
        f"{simulator.base_url}/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "echo: behind our back"}]},
        headers={"Authorization": f"Bearer {django_settings.OPENROUTER_API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["id"]


def _phantom_charge(owner, cost: str) -> None:
    """A ledger row OpenRouter never billed (the ledger over-charging)."""
    settle(Outcome(user_id=owner.pk, source="api", requested_model="m", status="ok", cost=Decimal(cost)))


def test_after_real_metered_calls_the_books_balance(simulator, catalog, owner):
    _metered_calls(owner)
    assert_ledger_matches_simulator(simulator)

    row = check_books()

    assert row is not None and BooksCheck.objects.get() == row
    assert row.ledger == sum(entry.cost for entry in LedgerEntry.objects.all()) > 0
    assert abs(row.drift) < EXACT
    assert not row.over and row.alerted_at is None
    assert mail.outbox == []


def test_a_generation_the_ledger_never_learned_of_is_drift_and_staff_hear_once(simulator, catalog, owner, settings):
    settings.BOOKS_DRIFT_USD = "0.000001"  # the simulator's calls cost fractions of a cent
    _metered_calls(owner)
    missing = billed(simulator, _unattributed_call(simulator))

    first = check_books()
    assert first.over_checks == 1 and abs(first.drift + missing) < EXACT
    assert mail.outbox == []  # one check alone may be a call in flight

    second = check_books()
    assert second.over_checks == 2 and second.alerted_at is not None
    [message] = mail.outbox
    assert message.to == ["stella@example.com"]
    assert "disagree" in message.subject and "missing from the ledger" in message.body

    check_books()
    assert len(mail.outbox) == 1  # once per day
    assert BooksCheck.objects.get().over_checks == 3


def test_the_ledger_charging_more_than_openrouter_billed_is_drift_too(simulator, owner):
    _phantom_charge(owner, "0.5")

    check_books()
    row = check_books()

    assert (row.ledger, row.openrouter, row.drift) == (Decimal("0.5"), 0, Decimal("0.5"))
    assert row.over and len(mail.outbox) == 1
    assert "by $0.50 on" in mail.outbox[0].subject
    assert "The ledger recorded more than OpenRouter billed" in mail.outbox[0].body


def test_a_difference_within_the_threshold_is_not_drift(simulator, owner):
    _phantom_charge(owner, "0.05")

    check_books()
    row = check_books()

    assert row.drift == Decimal("0.05") and not row.over and row.alerted_at is None
    assert mail.outbox == []


def test_the_threshold_is_the_larger_of_the_share_and_the_amount(settings):
    assert threshold(Decimal(100)) == Decimal(1)
    assert threshold(Decimal(5)) == Decimal("0.10")
    settings.BOOKS_DRIFT_PERCENT, settings.BOOKS_DRIFT_USD = "2.5", "0"
    assert threshold(Decimal(10)) == Decimal("0.25")


def test_when_openrouter_cannot_be_reached_nothing_is_recorded(simulator, owner, settings):
    _phantom_charge(owner, "0.5")
    with socket.socket() as sock:  # a port nothing listens on: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.OPENROUTER_BASE_URL = f"http://127.0.0.1:{port}/api/v1"

    assert check_books() is None
    assert books_balance() is False
    assert not BooksCheck.objects.exists() and mail.outbox == []


def test_the_task_records_a_check(simulator):
    assert books_balance() is True
    assert BooksCheck.objects.get().ledger == 0


def test_beat_runs_the_check_through_the_day_and_before_midnight():
    from orweb.celery import app

    app.loader.import_default_modules()
    entries = [entry for entry in BEAT_SCHEDULE.values() if entry["task"] == "billing.tasks.books_balance"]
    assert "billing.tasks.books_balance" in app.tasks
    assert sorted(sorted(entry["schedule"].minute) for entry in entries) == [[7, 22, 37, 52], [58]]
    assert all(entry["options"]["expires"] <= 15 * 60 for entry in entries)

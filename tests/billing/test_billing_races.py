"""The hand-written hold and settle statements under races: threads with their own connections, at once."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from billing.budgets import set_budget
from billing.holds import place_hold, release_expired
from billing.ledger import Outcome, settle
from billing.models import BudgetPeriod, Hold, LedgerEntry
from orweb.errors import BudgetExceeded

live = pytest.mark.django_db(transaction=True)


def _at_once(*calls):
    """Run each call in its own thread (and connection), all released together; their results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _outcome(user, generation_id, cost="0.30"):
    return Outcome(
        user_id=user.pk,
        source="api",
        requested_model="m",
        status="ok",
        cost=Decimal(cost),
        cost_source="reported",
        generation_id=generation_id,
    )


@live
def test_threads_racing_for_the_last_dollar_get_it_once(owner):
    set_budget(user=owner, amount=Decimal("1.50"))
    results = _at_once(*[lambda: place_hold(owner, Decimal("1"))] * 8)
    holds = [r for r in results if isinstance(r, Hold)]
    assert len(holds) == 1
    assert all(isinstance(r, BudgetExceeded) for r in results if r not in holds)
    period = BudgetPeriod.objects.get()
    assert (period.held, period.spent) == (Decimal("1"), 0)


@live
def test_members_sharing_a_group_budget_never_overspend_it(django_user_model):
    group = Group.objects.create(name="team")
    users = [django_user_model.objects.create_user(f"u{i}") for i in range(4)]
    for user in users:
        group.user_set.add(user)
        set_budget(user=user, amount=Decimal("10"))
    set_budget(group=group, amount=Decimal("3.5"))
    results = _at_once(*[lambda user=user: place_hold(user, Decimal("1")) for user in users for _ in range(3)])
    assert sum(isinstance(r, Hold) for r in results) == 3
    assert all(isinstance(r, (Hold, BudgetExceeded)) for r in results)  # no deadlock, no other error
    group_period = BudgetPeriod.objects.get(budget__group=group)
    assert group_period.held == Decimal("3")
    assert sum(p.held for p in BudgetPeriod.objects.filter(budget__user__isnull=False)) == Decimal("3")


@live
def test_a_refused_hold_changes_no_budget(owner):
    group = Group.objects.create(name="team")
    group.user_set.add(owner)
    set_budget(user=owner, amount=Decimal("10"))
    set_budget(group=group, amount=Decimal("0.5"))
    with pytest.raises(BudgetExceeded):
        place_hold(owner, Decimal("1"))
    assert [p.held for p in BudgetPeriod.objects.all()] == [0, 0]
    assert not Hold.objects.exists()


@live
def test_redeliveries_with_their_own_holds_charge_once_and_release_every_hold(owner):
    set_budget(user=owner, amount=Decimal("2"))
    holds = [place_hold(owner, Decimal("0.5")) for _ in range(3)]
    results = _at_once(*[lambda hold=hold: settle(_outcome(owner, "gen-1"), hold_id=hold.pk) for hold in holds])
    assert len({entry.pk for entry in results}) == 1
    assert LedgerEntry.objects.count() == 1
    period = BudgetPeriod.objects.get()
    assert (period.held, period.spent) == (0, Decimal("0.30"))
    assert Hold.objects.filter(released_at=None).count() == 0


@live
def test_a_late_settle_racing_the_expiry_sweep_releases_the_hold_once(owner):
    set_budget(user=owner, amount=Decimal("5"))
    for round_ in range(5):
        hold = place_hold(owner, Decimal("1"))
        Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        _at_once(
            lambda hold=hold, round_=round_: settle(_outcome(owner, f"gen-{round_}"), hold_id=hold.pk),
            release_expired,
        )
        period = BudgetPeriod.objects.get()
        assert period.held == 0
        assert period.spent == Decimal("0.30") * (round_ + 1)


@live
def test_settling_without_a_hold_charges_the_current_periods(owner):
    group = Group.objects.create(name="team")
    group.user_set.add(owner)
    set_budget(user=owner, amount=Decimal("1"))
    set_budget(group=group, amount=Decimal("1"), period="day")
    entry = settle(_outcome(owner, "gen-1", cost="0.25"))
    assert entry.pk and entry.cost == Decimal("0.25")
    assert sorted(p.spent for p in BudgetPeriod.objects.all()) == [Decimal("0.25")] * 2

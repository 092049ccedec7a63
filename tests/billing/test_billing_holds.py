"""Budgets, periods and holds: the worst case is reserved against every budget, or the call is refused."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from freezegun import freeze_time

from billing import holds
from billing.budgets import period_end, period_start, set_budget, status_for
from billing.holds import place_hold, release_expired
from billing.ledger import Outcome, settle
from billing.models import BudgetPeriod, Hold
from orweb.errors import BudgetExceeded

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("month", dt.date(2026, 2, 1), dt.date(2026, 3, 1)),
        ("week", dt.date(2026, 2, 16), dt.date(2026, 2, 23)),
        ("day", dt.date(2026, 2, 18), dt.date(2026, 2, 19)),
    ],
)
def test_periods_are_calendar_periods(period, start, end):
    assert period_start(period, dt.date(2026, 2, 18)) == start
    assert period_end(period, start) == end


def test_a_hold_is_placed_against_every_budget_that_applies(owner):
    group = Group.objects.create(name="team")
    group.user_set.add(owner)
    set_budget(user=owner, amount=Decimal("10"))
    set_budget(group=group, amount=Decimal("3"), period="week")
    hold = place_hold(owner, Decimal("1.5"))
    assert hold.periods.count() == 2
    assert sorted(BudgetPeriod.objects.values_list("held", flat=True)) == [Decimal("1.5")] * 2


def test_a_hold_that_doesnt_fit_names_the_budget_and_what_remains(owner):
    group = Group.objects.create(name="team")
    group.user_set.add(owner)
    set_budget(user=owner, amount=Decimal("10"))
    set_budget(group=group, amount=Decimal("2"))
    place_hold(owner, Decimal("1.5"))
    with pytest.raises(BudgetExceeded) as refused:
        place_hold(owner, Decimal("1"))
    assert refused.value.budget == "monthly budget of group team"
    assert refused.value.remaining == Decimal("0.5")
    assert refused.value.status == 402
    assert "needs up to $1.00 and $0.50 remains" in refused.value.message
    assert sorted(BudgetPeriod.objects.values_list("held", flat=True)) == [Decimal("1.5")] * 2


def test_no_budget_or_a_free_call_holds_nothing(owner):
    assert place_hold(owner, Decimal("1")) is None
    set_budget(user=owner, amount=Decimal("0"))
    assert place_hold(owner, Decimal("0")) is None
    with pytest.raises(BudgetExceeded):
        place_hold(owner, Decimal("0.0001"))


def test_a_new_period_starts_from_zero(owner):
    set_budget(user=owner, amount=Decimal("1"), period="day")
    with freeze_time("2026-03-01 12:00"):
        hold = place_hold(owner, Decimal("0.8"))
        settle(
            Outcome(
                user_id=owner.pk,
                source="chat",
                requested_model="m",
                status="ok",
                cost=Decimal("0.8"),
                cost_source="reported",
                generation_id="gen-1",
            ),
            hold_id=hold.pk,
        )
        with pytest.raises(BudgetExceeded):
            place_hold(owner, Decimal("0.5"))
    with freeze_time("2026-03-02 00:01"):
        assert place_hold(owner, Decimal("0.5")) is not None
        [status] = status_for(owner)
        assert (status.spent, status.held, status.remaining) == (0, Decimal("0.5"), Decimal("0.5"))


def test_status_reports_every_budget_and_the_alert(owner):
    set_budget(user=owner, amount=Decimal("1"), alert_percent=50)
    hold = place_hold(owner, Decimal("0.7"))
    settle(
        Outcome(
            user_id=owner.pk,
            source="chat",
            requested_model="m",
            status="ok",
            cost=Decimal("0.6"),
            cost_source="reported",
            generation_id="gen-1",
        ),
        hold_id=hold.pk,
    )
    [status] = status_for(owner)
    assert (status.limit, status.spent, status.held, status.remaining) == (
        1,
        Decimal("0.6"),
        0,
        Decimal("0.4"),
    )
    assert status.alert is True
    assert status.label == "monthly budget of user olivia"


def test_expired_holds_of_crashed_calls_are_released_once(owner):
    set_budget(user=owner, amount=Decimal("1"))
    with freeze_time("2026-03-01 12:00"):
        hold = place_hold(owner, Decimal("0.9"))
    with freeze_time("2026-03-01 12:10"):
        assert release_expired() == 0
    with freeze_time("2026-03-01 12:20"):
        assert release_expired() == 1
        assert release_expired() == 0
    assert BudgetPeriod.objects.get().held == 0
    assert Hold.objects.get(pk=hold.pk).released_at is not None
    # the call settles late: its cost is charged, its hold isn't released twice
    settle(
        Outcome(
            user_id=owner.pk,
            source="chat",
            requested_model="m",
            status="ok",
            cost=Decimal("0.2"),
            cost_source="reported",
            generation_id="gen-late",
        ),
        hold_id=hold.pk,
    )
    period = BudgetPeriod.objects.get()
    assert (period.spent, period.held) == (Decimal("0.2"), 0)


def test_a_hold_is_given_back_once_however_often_it_is_released(owner):
    """Two releasers (a sweep and a late settle, or two sweeps) race for one hold: the second finds it
    released and changes nothing."""
    set_budget(user=owner, amount=Decimal("1"))
    hold = place_hold(owner, Decimal("0.4"))

    assert holds.release(hold.pk, charge=Decimal("0.1")) is True
    assert holds.release(hold.pk, charge=Decimal("0.1")) is False

    period = BudgetPeriod.objects.get()
    assert (period.spent, period.held) == (Decimal("0.1"), 0)


def test_set_budget_validates(owner):
    for bad in (
        {"amount": Decimal("-1")},
        {"amount": Decimal("1"), "period": "year"},
        {"amount": Decimal("1"), "alert_percent": 120},
    ):
        with pytest.raises(ValueError):
            set_budget(user=owner, **bad)
    with pytest.raises(ValueError):
        set_budget(amount=Decimal("1"))
    budget = set_budget(user=owner, amount=Decimal("2"))
    assert set_budget(user=owner, amount=Decimal("3"), period="week").pk == budget.pk


def test_a_budget_added_while_a_hold_is_placed_refuses_the_call_and_holds_nothing(owner, monkeypatch):
    set_budget(user=owner, amount=Decimal("5"))
    create_missing_periods = holds._create_missing_periods

    def and_meanwhile_an_admin_adds_a_group_budget(user, day):
        create_missing_periods(user, day)
        late = Group.objects.create(name="late")
        late.user_set.add(user)
        set_budget(group=late, amount=Decimal("5"))

    monkeypatch.setattr(holds, "_create_missing_periods", and_meanwhile_an_admin_adds_a_group_budget)
    with pytest.raises(RuntimeError, match="could not be created"):
        place_hold(owner, Decimal("1"))
    assert not Hold.objects.exists()
    assert [period.held for period in BudgetPeriod.objects.all()] == [Decimal(0)]

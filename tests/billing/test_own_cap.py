"""A person's own cap (billing.caps): only ever below the admins' budgets, enforced at hold time like any
budget, under the same row locks, and gone (with its limit) when removed."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from freezegun import freeze_time

from billing.alerts import send_budget_alerts
from billing.alerts_banners import open_banners, raise_threshold_alerts
from billing.alerts_webhook import body
from billing.budgets import applicable_budgets, current_period, set_budget, status_for, today
from billing.caps import CapRefused, admin_ceiling, own_cap, remove_own_cap, set_own_cap
from billing.holds import place_hold, release
from billing.ledger import Outcome, settle
from billing.models import Budget, BudgetAlert, BudgetPeriod, Hold
from billing.spend import spend_summary
from orweb.errors import BudgetExceeded
from tests.billing.rollups import add_usage
from tests.billing.test_billing_races import _at_once

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mid_month():
    with freeze_time("2026-03-18 10:00"):
        yield


def _group(team_group) -> Group:
    return Group.objects.get(pk=team_group.pk)


def test_without_an_admin_budget_any_non_negative_amount_is_a_cap(owner):
    assert admin_ceiling(owner, "month") is None
    cap = set_own_cap(owner, Decimal("0"), "day")
    assert (cap.person, cap.user, cap.group, cap.limit_usd, cap.period) == (owner, None, None, Decimal(0), "day")
    cap = set_own_cap(owner, Decimal("1000000"), "week")
    assert Budget.objects.get().limit_usd == Decimal("1000000") and cap.period == "week"


@pytest.mark.parametrize(
    ("amount", "period", "reason"),
    [
        ("-0.01", "month", "0 or more"),
        ("1000000.01", "month", r"at most \$1,000,000\.00"),
        ("NaN", "month", "0 or more"),
        ("Infinity", "month", "0 or more"),
        ("5", "year", "one of day, week, month"),
    ],
)
def test_bad_amounts_and_periods_are_refused_and_change_nothing(owner, amount, period, reason):
    set_own_cap(owner, Decimal("3"), "month")
    with pytest.raises(CapRefused, match=reason):
        set_own_cap(owner, Decimal(amount), period)
    assert (own_cap(owner).limit_usd, own_cap(owner).period) == (Decimal(3), "month")


def test_the_cap_must_be_below_the_persons_admin_budget(owner):
    set_budget(user=owner, amount=Decimal("10"))
    with pytest.raises(CapRefused, match=r"the monthly budget of user olivia is \$10\.00"):
        set_own_cap(owner, Decimal("10"), "month")
    assert own_cap(owner) is None
    assert set_own_cap(owner, Decimal("9.99"), "month").limit_usd == Decimal("9.99")
    # The admin's budget is untouched beside it: still the one and only budget of `user` olivia.
    assert Budget.objects.get(user=owner).limit_usd == Decimal(10)


def test_the_cap_must_be_below_any_group_budget_and_the_tightest_one_is_named(owner, team_group):
    set_budget(user=owner, amount=Decimal("50"))
    set_budget(group=_group(team_group), amount=Decimal("20"), period="week")
    with pytest.raises(CapRefused, match=r"weekly budget of group .* is \$20\.00"):
        set_own_cap(owner, Decimal("25"), "day")
    assert set_own_cap(owner, Decimal("19"), "day").period == "day"


def test_a_shorter_admin_budget_bounds_a_longer_cap_by_as_many_periods_as_it_spans(owner):
    set_budget(user=owner, amount=Decimal("5"), period="day")
    with pytest.raises(CapRefused, match=r"\$5\.00, at most \$155\.00 in a month"):
        set_own_cap(owner, Decimal("155"), "month")
    with pytest.raises(CapRefused, match=r"at most \$35\.00 in a week"):
        set_own_cap(owner, Decimal("35"), "week")
    assert set_own_cap(owner, Decimal("100"), "month").limit_usd == Decimal(100)


def test_the_cap_applies_beside_the_admins_budgets_and_is_counted_in_the_status(owner, team_group):
    admin = set_budget(user=owner, amount=Decimal("10"))
    group = set_budget(group=_group(team_group), amount=Decimal("30"))
    cap = set_own_cap(owner, Decimal("2"), "week")
    assert [b.pk for b in applicable_budgets(owner)] == sorted([admin.pk, group.pk, cap.pk])
    [tightest, *_] = status_for(owner)
    assert (tightest.budget_id, tightest.own, tightest.limit) == (cap.pk, True, Decimal(2))
    assert tightest.label == "personal weekly cap of user olivia"


def test_a_new_cap_period_starts_from_what_the_person_already_spent(owner, teammate):
    add_usage(today(), owner, "m", cost=Decimal("1.25"))
    add_usage(today() - dt.timedelta(days=3), owner, "m", cost=Decimal("0.50"))
    add_usage(today(), teammate, "m", cost=Decimal("7"))
    cap = set_own_cap(owner, Decimal("2"), "month")
    assert current_period(cap).spent == Decimal("1.75")
    with pytest.raises(BudgetExceeded):
        place_hold(owner, Decimal("0.30"))
    assert place_hold(owner, Decimal("0.25")) is not None


def test_the_cap_refuses_a_hold_saying_it_is_their_own_and_where_to_change_it(owner):
    admin = set_budget(user=owner, amount=Decimal("10"))
    set_own_cap(owner, Decimal("1"), "month")
    with pytest.raises(BudgetExceeded) as refused:
        place_hold(owner, Decimal("1.50"))
    message = str(refused.value)
    assert message.startswith("Your own monthly cap of $1.00 can't cover this request")
    assert "You set this cap yourself" in message and "usage page (/account/usage/)" in message
    assert refused.value.budget == "monthly cap you set yourself (change it on your usage page)"
    assert refused.value.remaining == Decimal(1)
    assert not Hold.objects.exists()
    assert current_period(admin).held == 0


def test_removing_the_cap_frees_the_spending_it_held_back(owner):
    set_budget(user=owner, amount=Decimal("10"))
    set_own_cap(owner, Decimal("1"), "month")
    first = place_hold(owner, Decimal("0.80"))
    with pytest.raises(BudgetExceeded):
        place_hold(owner, Decimal("0.50"))
    assert remove_own_cap(owner) is True
    assert remove_own_cap(owner) is False
    assert place_hold(owner, Decimal("0.50")) is not None
    # The first call still settles against the admin's budget, with its cap gone.
    settle(_outcome(owner, "0.70", "gen-after-removal"), hold_id=first.pk)
    admin_period = BudgetPeriod.objects.get(budget__user=owner)
    assert (admin_period.spent, admin_period.held) == (Decimal("0.70"), Decimal("0.50"))


def test_a_cap_held_against_is_settled_like_any_budget(owner):
    cap = set_own_cap(owner, Decimal("1"), "day")
    hold = place_hold(owner, Decimal("0.40"))
    settle(_outcome(owner, "0.15", "gen-capped"), hold_id=hold.pk)
    period = current_period(cap)
    assert (period.spent, period.held) == (Decimal("0.15"), 0)
    hold = place_hold(owner, Decimal("0.85"))
    assert release(hold.pk)


def test_the_header_summary_names_the_cap_when_it_is_the_tightest(owner, team_group):
    set_budget(group=_group(team_group), amount=Decimal("20"))
    summary = spend_summary(owner)
    assert summary.budget.startswith("monthly budget of group")
    set_own_cap(owner, Decimal("3"), "week")
    place_hold(owner, Decimal("1"))
    summary = spend_summary(owner)
    assert (summary.budget, summary.limit, summary.remaining) == (
        "personal weekly cap of user olivia",
        Decimal(3),
        Decimal(2),
    )


def test_the_caps_alerts_go_to_the_person_alone(owner, teammate, staff, django_user_model):
    loner = django_user_model.objects.create_user("lonely", email="lonely@example.com")
    owner.email, staff.email = "olivia@example.com", "stella@example.com"
    owner.save()
    staff.save()
    cap = set_own_cap(owner, Decimal("1"), "month")
    BudgetPeriod.objects.filter(pk=current_period(cap).pk).update(spent=Decimal("0.90"))
    assert raise_threshold_alerts() == 1
    assert [b.label for b in open_banners(owner)] == ["your own monthly cap"]
    assert open_banners(teammate) == [] and open_banners(loner) == [] and open_banners(staff) == []
    assert send_budget_alerts() == 1
    [message] = mail.outbox
    assert message.to == ["olivia@example.com"]
    sent = json.loads(body(BudgetAlert.objects.get()))
    assert sent["budget"] | {"id": 0} == {
        "id": 0,
        "label": "personal monthly cap of user olivia",
        "period": "month",
        "person": "olivia",
        "set_by_person": True,
    }


@pytest.mark.django_db(transaction=True)
def test_parallel_holds_never_push_the_cap_past_its_limit(owner, team_group):
    set_budget(group=_group(team_group), amount=Decimal("100"))
    cap = set_own_cap(owner, Decimal("3.50"), "month")
    results = _at_once(*[lambda: place_hold(owner, Decimal("1"))] * 10)
    holds = [r for r in results if isinstance(r, Hold)]
    assert len(holds) == 3
    assert all(isinstance(r, BudgetExceeded) and "Your own monthly cap" in str(r) for r in results if r not in holds)
    period = current_period(cap)
    assert (period.held, period.spent) == (Decimal(3), 0)
    # Settling them at once, while more try to hold, still never goes past the cap.
    settles = [
        lambda hold=hold, n=n: settle(_outcome(owner, "0.90", f"gen-race-{n}"), hold_id=hold.pk)
        for n, hold in enumerate(holds)
    ]
    more = [lambda: place_hold(owner, Decimal("0.20"))] * 6
    results = _at_once(*settles, *more)
    assert all(not isinstance(r, Exception) or isinstance(r, BudgetExceeded) for r in results)
    period = current_period(cap)
    assert period.spent == Decimal("2.70")
    assert period.spent + period.held <= cap.limit_usd
    assert period.held == Decimal("0.20") * sum(isinstance(r, Hold) for r in results)


def _outcome(user, cost: str, generation_id: str) -> Outcome:
    return Outcome(
        user_id=user.pk,
        source="api",
        requested_model="m",
        status="ok",
        cost=Decimal(cost),
        cost_source="reported",
        generation_id=generation_id,
    )

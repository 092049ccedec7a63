"""The usage page's "Your own cap": any member sets, changes or removes a cap on their own spending, only by
POST with a CSRF token, only their own, only below the admins' budgets; the console lists it read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from billing.budgets import current_period, set_budget
from billing.caps import own_cap, set_own_cap
from billing.holds import place_hold
from billing.models import Budget

pytestmark = pytest.mark.django_db

USAGE = reverse("account:usage")
SET = reverse("account:set_cap")
REMOVE = reverse("account:remove_cap")


@pytest.fixture(autouse=True)
def _mid_month():
    with freeze_time("2026-03-18 10:00"):
        yield


def test_without_a_cap_the_page_offers_one_and_names_the_admins_limit(owner_client, owner, team_group):
    set_budget(group=Group.objects.get(pk=team_group.pk), amount=Decimal("40"))
    page = owner_client.get(USAGE).content.decode()
    assert "Your own cap" in page and "You have not capped your own spending" in page
    assert f"the monthly budget of group {team_group.name} is $40.00" in page
    assert f'action="{SET}"' in page and f'action="{REMOVE}"' not in page


def test_a_member_sets_their_cap_and_the_page_shows_it_with_spent_and_held(owner_client, owner):
    response = owner_client.post(SET, {"amount": "12.5", "period": "week"})
    assert response.status_code == 302 and response["Location"] == USAGE
    cap = own_cap(owner)
    assert (cap.limit_usd, cap.period, cap.user, cap.group) == (Decimal("12.5"), "week", None, None)
    period = current_period(cap)
    period.spent = Decimal("2")
    period.save()
    place_hold(owner, Decimal("0.5"))
    page = owner_client.get(USAGE).content.decode()
    assert "Set your own weekly cap: $12.50." in page
    assert "You cap your own spending at <strong>$12.50 a week</strong>: $2.00 spent + $0.50 held, $10.00 left" in page
    assert "Personal weekly cap of user olivia" in page and 'href="#own-cap"' in page
    assert f'action="{REMOVE}"' in page and 'value="12.5"' in page


def test_changing_the_cap_keeps_one_cap(owner_client, owner):
    owner_client.post(SET, {"amount": "5", "period": "month"})
    response = owner_client.post(SET, {"amount": "2", "period": "day"}, follow=True)
    assert "Changed your own daily cap: $2.00." in response.content.decode()
    assert Budget.objects.filter(person=owner).count() == 1 and own_cap(owner).limit_usd == 2
    owner_client.post(SET, {"amount": "100", "period": "month"})
    assert 'name="amount" inputmode="decimal" required value="100"' in owner_client.get(USAGE).content.decode()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"amount": "-1", "period": "month"}, "A cap must be an amount of USD of 0 or more."),
        ({"amount": "2000000", "period": "month"}, "A cap can be at most $1,000,000.00."),
        ({"amount": "1e30", "period": "month"}, "A cap can be at most $1,000,000.00."),
        ({"amount": "lots", "period": "month"}, "Enter an amount of USD, like 5 or 12.50."),
        ({"amount": "NaN", "period": "month"}, "Enter an amount of USD, like 5 or 12.50."),
        ({"amount": "0.00001", "period": "month"}, "Use at most 4 decimal places."),
        ({"amount": "", "period": "month"}, "Enter the most you want to spend, in USD."),
        ({"amount": "5", "period": "year"}, "Pick day, week or month."),
    ],
)
def test_bad_input_is_a_form_error_and_changes_nothing(owner_client, owner, data, error):
    set_own_cap(owner, Decimal("3"), "month")
    response = owner_client.post(SET, data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert (own_cap(owner).limit_usd, own_cap(owner).period) == (Decimal(3), "month")


def test_a_cap_not_below_the_admins_budget_is_refused_naming_it(owner_client, owner):
    set_budget(user=owner, amount=Decimal("10"))
    response = owner_client.post(SET, {"amount": "10", "period": "month"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "Your own cap must be below what your admins allow: the monthly budget of user olivia is $10.00." in page
    assert own_cap(owner) is None
    assert owner_client.post(SET, {"amount": "9.99", "period": "month"}).status_code == 302


def test_removing_the_cap(owner_client, owner):
    set_own_cap(owner, Decimal("3"), "month")
    response = owner_client.post(REMOVE, follow=True)
    assert "Removed your own cap." in response.content.decode()
    assert own_cap(owner) is None
    assert "You had no cap of your own." in owner_client.post(REMOVE, follow=True).content.decode()


def test_changes_need_sign_in_post_and_a_csrf_token(owner):
    assert Client().post(SET, {"amount": "1", "period": "day"}).status_code == 302
    assert Client().post(REMOVE).status_code == 302
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(SET, {"amount": "1", "period": "day"}).status_code == 403
    set_own_cap(owner, Decimal("3"), "month")
    assert client.post(REMOVE).status_code == 403
    assert client.get(SET, {"amount": "1", "period": "day"}).status_code == 405
    assert client.get(REMOVE).status_code == 405
    assert own_cap(owner).limit_usd == Decimal(3)


def test_a_teammate_only_ever_changes_their_own_cap(teammate_client, owner, teammate):
    set_own_cap(owner, Decimal("3"), "month")
    # Naming someone else in the form is ignored: the cap is always the signed-in person's.
    for name in ("user", "person", "person_id"):
        teammate_client.post(SET, {"amount": "0", "period": "day", name: owner.pk})
    teammate_client.post(REMOVE, {"person": owner.pk})
    assert (own_cap(owner).limit_usd, own_cap(owner).period) == (Decimal(3), "month")
    assert own_cap(teammate) is None
    assert "$3.00" not in teammate_client.get(USAGE).content.decode()


def test_the_console_lists_the_cap_as_set_by_the_person_and_admins_cannot_edit_it(staff_client, owner):
    set_budget(user=owner, amount=Decimal("10"))
    cap = set_own_cap(owner, Decimal("4"), "week")
    page = staff_client.get(reverse("console:budgets")).content.decode()
    assert 'data-testid="budget-own-olivia"' in page and "(set by the person)" in page
    assert 'data-testid="budget-person-olivia"' in page
    assert f'action="{reverse("console:budget_edit", args=[cap.pk])}"' not in page
    edit = staff_client.post(
        reverse("console:budget_edit", args=[cap.pk]), {"amount": "100", "period": "month", "alert_percent": "80"}
    )
    assert edit.status_code == 404
    assert own_cap(owner).limit_usd == Decimal(4)


def test_the_header_counts_the_cap_when_it_is_the_tightest(owner_client, owner, team_group):
    set_budget(group=Group.objects.get(pk=team_group.pk), amount=Decimal("20"))
    set_own_cap(owner, Decimal("3"), "week")
    page = owner_client.get(reverse("chat:index")).content.decode()
    assert "left in the personal weekly cap of user olivia" in page
    assert "<span data-remaining>$3.00</span> left" in page


def test_django_admin_leaves_the_cap_to_its_person(superuser_client, owner):
    set_budget(user=owner, amount=Decimal("10"))
    cap = set_own_cap(owner, Decimal("4"), "week")
    listing = superuser_client.get(reverse("admin:billing_budget_changelist")).content.decode()
    assert "monthly budget of user olivia" in listing and "cap of user olivia" not in listing
    change = reverse("admin:billing_budget_change", args=[cap.pk])
    assert superuser_client.get(change).status_code == 302  # Django admin's "no such budget"
    assert superuser_client.post(change, {"limit_usd": "100", "period": "month"}).status_code == 302
    assert own_cap(owner).limit_usd == Decimal(4)

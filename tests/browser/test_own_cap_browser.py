"""A member's own cap in Chromium: set from the usage page with the keyboard, shown with spent + held, a
refused amount explained beside the field, then removed; screenshots for the record."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from freezegun import freeze_time
from playwright.sync_api import expect

from billing.budgets import set_budget
from billing.caps import own_cap, set_own_cap
from tests.billing.rollups import add_usage

DAY = dt.date(2026, 11, 14)


@pytest.fixture(autouse=True)
def _mid_month():
    """Noon mid-month keeps the month still while the test runs (the live server is a thread of this
    process, so it sees the same clock)."""
    with freeze_time(f"{DAY} 12:00:00", tick=True):
        yield


def test_a_member_sets_changes_and_removes_their_own_cap(new_tab, live_app, owner, team_group):
    set_budget(group=Group.objects.get(pk=team_group.pk), amount=Decimal("40"))
    add_usage(DAY, owner, "openai/gpt-4o-mini", requests=6, cost=Decimal("3.2"))

    tab = new_tab(signed_in_as=owner)
    tab.goto("/account/usage/")
    expect(tab.page.get_by_test_id("no-own-cap")).to_be_visible()
    tab.page.get_by_label("Cap (USD)").fill("15")
    tab.page.get_by_label("Every").select_option("week")
    tab.page.get_by_label("Cap (USD)").press("Enter")

    expect(tab.page.locator(".flash")).to_contain_text("Set your own weekly cap: $15.00.")
    expect(tab.page.get_by_test_id("own-cap")).to_contain_text("$15.00 a week: $3.20 spent + $0 held, $11.80 left")
    expect(tab.page.get_by_text("Personal weekly cap of user olivia")).to_be_visible()
    tab.screenshot("usage-own-cap")

    tab.page.get_by_label("Cap (USD)").fill("40")
    tab.page.get_by_label("Every").select_option("month")
    tab.page.get_by_role("button", name="Change my cap").click()
    expect(tab.page.get_by_test_id("cap-error")).to_contain_text(
        "Your own cap must be below what your admins allow: the monthly budget of group"
    )
    tab.screenshot("usage-own-cap-error")
    # The refused form comes back as a 400, which Chromium reports on the console; nothing else may.
    assert tab.console_errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    tab.console_errors.clear()
    assert own_cap(owner).limit_usd == Decimal(15)

    tab.page.get_by_role("button", name="Remove my cap").focus()
    tab.page.keyboard.press("Enter")
    expect(tab.page.locator(".flash")).to_contain_text("Removed your own cap.")
    expect(tab.page.get_by_test_id("no-own-cap")).to_be_visible()
    assert own_cap(owner) is None


def test_admins_see_the_cap_on_the_budgets_page_as_set_by_the_person(new_tab, live_app, staff, owner):
    set_budget(user=owner, amount=Decimal("25"))
    set_own_cap(owner, Decimal("6"), "week")
    add_usage(DAY, owner, "openai/gpt-4o-mini", requests=2, cost=Decimal("1.5"))

    admin = new_tab(signed_in_as=staff)
    admin.goto("/console/budgets/")
    row = admin.page.get_by_test_id("budget-own-olivia")
    expect(row).to_contain_text("(set by the person)")
    expect(row.get_by_test_id("own-cap-limit")).to_have_text("$6.00 a week")
    expect(row.get_by_role("button", name="Save")).to_have_count(0)
    expect(admin.page.get_by_test_id("budget-person-olivia").get_by_label("Limit (USD)")).to_have_value("25")
    admin.screenshot("console-budgets-own-cap")

"""The team page in Chromium: staff see everyone's spend with bars; a member's budget alert banner on their
usage page; screenshots for the record."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from freezegun import freeze_time
from playwright.sync_api import expect

from billing.alerts_banners import raise_threshold_alerts
from billing.budgets import set_budget
from billing.ledger import Outcome, settle
from billing.models import LedgerEntry
from tests.billing.rollups import add_usage

DAY = dt.date(2026, 11, 14)


@pytest.fixture(autouse=True)
def _mid_month():
    """The page sums this month's spend: noon mid-month keeps the month still while a test runs (the live
    server is a thread of this process, so it sees the same clock)."""
    with freeze_time(f"{DAY} 12:00:00", tick=True):
        yield


def spent(user, cost: str, calls: int) -> None:
    add_usage(DAY, user, "openai/gpt-4o-mini", requests=calls, cost=Decimal(cost))


def test_staff_see_the_team_spend_page(new_tab, live_app, staff, owner, teammate, outsider):
    spent(owner, "3.2", 41)
    spent(teammate, "1.05", 12)
    spent(outsider, "0.2", 3)
    set_budget(user=owner, amount=Decimal("4"))

    tab = new_tab(signed_in_as=staff)
    tab.goto("/account/usage/")
    tab.page.get_by_role("link", name="Team").click()

    expect(tab.page.get_by_role("heading", level=1)).to_contain_text("Team spend")
    expect(tab.page.get_by_test_id("team-total")).to_have_text("$4.45")
    rows = tab.page.locator("#people tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("olivia")
    expect(rows.first).to_contain_text("Monthly budget of user olivia")
    expect(tab.page.get_by_role("link", name="Download CSV")).to_be_visible()
    tab.screenshot("team-spend")


def test_staff_set_a_budget_from_the_team_page(new_tab, live_app, staff, owner):
    spent(owner, "0.75", 5)

    tab = new_tab(signed_in_as=staff)
    tab.goto("/account/team/")
    tab.page.get_by_label("Person", exact=True).fill("olivia")
    tab.page.get_by_label("Limit (USD)").fill("2")
    tab.page.get_by_label("Limit (USD)").press("Enter")

    expect(tab.page.locator(".flash")).to_contain_text("Set the monthly budget of user olivia: $2.00.")
    expect(tab.page.locator("#people tbody tr").first).to_contain_text("Monthly budget of user olivia, $2.00")
    tab.page.get_by_label("Person", exact=True).fill("olivia")
    tab.page.get_by_label("Limit (USD)").fill("-3")
    tab.page.get_by_role("button", name="Save budget").click()
    expect(tab.page.locator("#amount-error")).to_contain_text("greater than or equal to 0")
    tab.screenshot("team-budget-error")
    # The refused form comes back as a 400, which Chromium reports on the console; nothing else may.
    assert tab.console_errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    tab.console_errors.clear()


def test_a_member_sees_their_budget_alert_until_they_dismiss_it(new_tab, live_app, owner):
    set_budget(user=owner, amount=Decimal("4"))
    settle(
        Outcome(
            user_id=owner.pk,
            source="chat",
            requested_model="openai/gpt-4o-mini",
            status="ok",
            cost=Decimal("3.5"),
            cost_source=LedgerEntry.CostSource.REPORTED,
        )
    )
    raise_threshold_alerts()

    tab = new_tab(signed_in_as=owner)
    tab.goto("/account/usage/")
    banner = tab.page.get_by_test_id("alert-banner")
    expect(banner).to_contain_text("Your monthly budget has reached 80% of its limit: $3.50 of $4.00")
    tab.screenshot("usage-budget-alert")
    banner.get_by_role("button", name="Dismiss").focus()
    tab.page.keyboard.press("Enter")
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Usage")
    expect(tab.page.get_by_test_id("alert-banner")).to_have_count(0)

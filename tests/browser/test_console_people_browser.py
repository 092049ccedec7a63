"""The people, groups, budgets and audit pages in Chromium: an admin adds a person and gets the link, the
newcomer sets a password with it, the admin deactivates someone, restricts a group's models, edits a
budget inline and reads it all back in the audit log. Screenshots of each page for the record."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from freezegun import freeze_time
from playwright.sync_api import expect

from billing.budgets import set_budget
from billing.models import BudgetPeriod
from console.models import AuditEvent

pytestmark = pytest.mark.browser

DAY = dt.date(2026, 11, 14)


@pytest.fixture(autouse=True)
def _mid_month():
    with freeze_time(f"{DAY} 12:00:00", tick=True):
        yield


def test_an_admin_adds_a_person_who_sets_a_password(new_tab, live_app, staff, team_group):
    admin = new_tab(signed_in_as=staff)
    admin.goto("/console/people/")
    admin.page.get_by_label("Username").fill("nina")
    admin.page.get_by_label("E-mail").fill("nina@example.com")
    admin.page.get_by_label("Team").check()
    admin.screenshot("console-people")
    admin.page.get_by_role("button", name="Add person").click()

    expect(admin.page.get_by_role("heading", level=1)).to_have_text("Added nina")
    link = admin.page.get_by_test_id("set-password-link").input_value()
    admin.screenshot("console-person-created")

    newcomer = new_tab()
    newcomer.page.goto(link)
    newcomer.page.get_by_label("New password").fill("a-long-new-secret-9")
    newcomer.page.get_by_label("Again").fill("a-long-new-secret-9")
    newcomer.screenshot("console-set-password")
    newcomer.page.get_by_role("button", name="Set password").click()
    expect(newcomer.page.locator(".flash")).to_contain_text("Your password is set.")
    newcomer.page.get_by_label("Username").fill("nina")
    newcomer.page.get_by_label("Password").fill("a-long-new-secret-9")
    newcomer.page.get_by_role("button", name="Sign in").click()
    expect(newcomer.page.locator(".topbar")).to_contain_text("nina")


def test_an_admin_deactivates_a_person(new_tab, live_app, staff, owner):
    admin = new_tab(signed_in_as=staff)
    admin.goto(f"/console/people/{owner.pk}/manage/")
    admin.page.get_by_role("button", name="Deactivate").click()
    expect(admin.page.locator(".flash")).to_contain_text("Deactivated olivia")
    expect(admin.page.get_by_role("button", name="Reactivate")).to_be_visible()
    admin.screenshot("console-person-manage")


def test_an_admin_restricts_a_groups_models_and_budget(new_tab, live_app, staff, owner, team_group, catalog):
    admin = new_tab(signed_in_as=staff)
    admin.goto("/console/groups/")
    admin.screenshot("console-groups")
    admin.page.locator("#groups").get_by_role("link", name="Team").click()
    admin.page.get_by_label("Search the catalog").fill("claude")
    admin.page.get_by_role("button", name="Search").click()
    admin.page.get_by_label("anthropic/claude-sonnet-4").check()
    admin.page.get_by_role("button", name="Allow ticked").click()
    expect(admin.page.get_by_test_id("access-summary")).to_contain_text("Members may use 1 model now")
    admin.page.get_by_label("Requests / minute").fill("30")
    admin.page.get_by_role("button", name="Save rate limits").click()
    admin.page.locator("#budget-title").scroll_into_view_if_needed()
    admin.page.get_by_label("Limit (USD)").fill("40")
    admin.page.get_by_role("button", name="Save budget").click()
    expect(admin.page.locator(".flash")).to_contain_text("Saved Team's budget.")
    admin.screenshot("console-group")


def test_budgets_edited_inline_and_the_audit_log(new_tab, live_app, staff, owner, team_group):
    budget = set_budget(group=team_group, amount=Decimal("30"))
    BudgetPeriod.objects.create(budget=budget, start=DAY.replace(day=1), spent=Decimal("18"), held=Decimal("0.4"))
    set_budget(user=owner, amount=Decimal("5"), period="week")

    admin = new_tab(signed_in_as=staff)
    admin.goto("/console/budgets/")
    row = admin.page.get_by_test_id("budget-group-Team")
    expect(row).to_contain_text("$18.00")
    expect(row).to_contain_text("$0.40")
    admin.screenshot("console-budgets")
    row.get_by_label("Limit (USD)").fill("60")
    row.get_by_role("button", name="Save").click()
    expect(admin.page.locator(".flash")).to_contain_text("Saved the budget of group Team.")
    expect(admin.page.get_by_test_id("budget-group-Team").get_by_label("Limit (USD)")).to_have_value("60")

    admin.page.get_by_role("link", name="Audit log").click()
    expect(admin.page.locator("#audit tbody tr")).to_have_count(1)
    expect(admin.page.locator("#audit tbody tr").first).to_contain_text("budget.change")
    admin.screenshot("console-audit")
    assert AuditEvent.objects.get().after["limit_usd"] == "60"

"""The team page in Chromium: staff see everyone's spend with bars; a screenshot for the record."""

from __future__ import annotations

from decimal import Decimal

from playwright.sync_api import expect

from billing.budgets import set_budget, today
from billing.models import DailyUsage


def test_staff_see_the_team_spend_page(new_tab, live_app, django_user_model):
    boss = django_user_model.objects.create_user("boss", password="x", is_staff=True)
    for name, cost, calls in (("maria", "3.2", 41), ("li", "1.05", 12), ("sam", "0.2", 3)):
        user = django_user_model.objects.create_user(name, password="x")
        DailyUsage.objects.create(
            day=today(), user=user, model="openai/gpt-4o-mini", source="chat", requests=calls, cost=Decimal(cost)
        )
    set_budget(user=django_user_model.objects.get(username="maria"), amount=Decimal("4"))

    tab = new_tab(signed_in_as=boss)
    tab.goto("/account/usage/")
    tab.page.get_by_role("link", name="Team").click()

    expect(tab.page.get_by_role("heading", level=1)).to_contain_text("Team spend")
    expect(tab.page.get_by_test_id("team-total")).to_have_text("$4.45")
    rows = tab.page.locator("#people tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("maria")
    expect(rows.first).to_contain_text("Monthly budget of user maria")
    expect(tab.page.get_by_role("link", name="Download CSV")).to_be_visible()
    tab.screenshot("team-spend")


def test_staff_set_a_budget_from_the_team_page(new_tab, live_app, django_user_model):
    boss = django_user_model.objects.create_user("boss", password="x", is_staff=True)
    li = django_user_model.objects.create_user("li", password="x")
    DailyUsage.objects.create(
        day=today(), user=li, model="openai/gpt-4o-mini", source="chat", requests=5, cost=Decimal("0.75")
    )

    tab = new_tab(signed_in_as=boss)
    tab.goto("/account/team/")
    tab.page.get_by_label("Person", exact=True).fill("li")
    tab.page.get_by_label("Limit (USD)").fill("2")
    tab.page.get_by_label("Limit (USD)").press("Enter")

    expect(tab.page.locator(".flash")).to_contain_text("Set the monthly budget of user li: $2.00.")
    expect(tab.page.locator("#people tbody tr").first).to_contain_text("Monthly budget of user li, $2.00")
    tab.page.get_by_label("Person", exact=True).fill("li")
    tab.page.get_by_label("Limit (USD)").fill("-3")
    tab.page.get_by_role("button", name="Save budget").click()
    expect(tab.page.locator("#amount-error")).to_contain_text("greater than or equal to 0")
    tab.screenshot("team-budget-error")
    # The refused form comes back as a 400, which Chromium reports on the console; nothing else may.
    assert tab.console_errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    tab.console_errors.clear()

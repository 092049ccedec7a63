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
        DailyUsage.objects.create(day=today(), user=user, model="openai/gpt-4o-mini", source="chat",
                                  requests=calls, cost=Decimal(cost))
    set_budget(user=django_user_model.objects.get(username="maria"), amount=Decimal("4"))

    tab = new_tab(signed_in_as=boss)
    tab.goto("/account/usage/")
    tab.page.get_by_role("link", name="Team").click()

    expect(tab.page.get_by_role("heading", level=1)).to_contain_text("Team spend")
    expect(tab.page.get_by_test_id("team-total")).to_have_text("$4.4500")
    rows = tab.page.locator("table.team tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("maria")
    expect(rows.first).to_contain_text("Monthly budget of user maria")
    expect(tab.page.get_by_role("link", name="Download CSV")).to_be_visible()
    tab.screenshot("team-spend")

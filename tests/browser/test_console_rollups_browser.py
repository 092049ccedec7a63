"""In Chromium: the explorer narrowed to one API key and to one source (read from the key rollup and the
person and source rollup), the budget alert banner on a page other than the usage page (dismissed there,
back on that page), and N of the spend anomalies set on the anomalies page (a bad value is a form error).
Screenshots go to test-artifacts/."""

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
from gateway.keys import create_key
from tests.billing.rollups import add_usage

DAY = dt.date(2026, 11, 14)
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "google/gemini-2.5-flash"]


@pytest.fixture(autouse=True)
def _mid_month():
    with freeze_time(f"{DAY} 12:00:00", tick=True):
        yield


@pytest.fixture
def keyed_spend(owner, teammate):
    """Two weeks of calls with two of olivia's keys (API and batch) and some of tomas's, per day and model."""
    ci, _ = create_key(owner, "ci-runner")
    notebook, _ = create_key(owner, "notebook")
    for offset in range(14):
        day = DAY - dt.timedelta(days=offset)
        for n, model in enumerate(MODELS):
            add_usage(day, owner, model, source="api", key=ci.pk, requests=3 + n, cost=Decimal(offset + n + 1) / 10)
            add_usage(day, owner, model, source="batch", key=ci.pk, requests=2, cost=Decimal(n + 1) / 20)
            add_usage(day, owner, model, source="api", key=notebook.pk, requests=1, cost=Decimal("0.05"))
            add_usage(day, teammate, model, source="chat", requests=4, cost=Decimal(n + 2) / 10)
    return ci


def test_the_explorer_narrowed_to_a_key_stacked_by_source(new_tab, live_app, staff, owner, keyed_spend):
    tab = new_tab(signed_in_as=staff)
    tab.goto(f"/console/?preset=custom&start=2026-11-01&end=2026-11-14&key={keyed_spend.pk}&stack=source")
    expect(tab.page.get_by_test_id("range")).to_contain_text("key:")
    expect(tab.page.locator("canvas#spend-chart[data-drawn='2']")).to_be_attached()  # API and batch
    expect(tab.page.get_by_test_id("top-person").locator("tbody tr")).to_have_count(1)
    expect(tab.page.get_by_test_id("top-source").locator("tbody tr")).to_have_count(2)
    tab.screenshot("console-explorer-one-key")


def test_the_explorer_narrowed_to_a_source_by_group(new_tab, live_app, staff, owner, team_group, keyed_spend):
    tab = new_tab(signed_in_as=staff)
    tab.goto("/console/?preset=custom&start=2026-11-01&end=2026-11-14&source=api&stack=group")
    expect(tab.page.get_by_test_id("range")).to_contain_text("source: api")
    expect(tab.page.locator("canvas#spend-chart[data-drawn]")).to_be_attached()
    expect(tab.page.get_by_test_id("top-person").locator("tbody tr")).to_have_count(1)  # tomas only chats
    tab.screenshot("console-explorer-one-source-by-group")


def test_the_budget_banner_shows_on_every_page_and_is_dismissed_where_it_is(new_tab, live_app, owner, catalog):
    set_budget(user=owner, amount=Decimal("4"))
    settle(
        Outcome(
            user_id=owner.pk, source="chat", requested_model="openai/gpt-4o-mini", status="ok",
            cost=Decimal("3.5"), cost_source=LedgerEntry.CostSource.REPORTED,
        )
    )  # fmt: skip
    raise_threshold_alerts()
    tab = new_tab(signed_in_as=owner)
    tab.goto("/models/")
    banner = tab.page.get_by_test_id("alert-banner")
    expect(banner).to_contain_text("has reached 80% of its limit: $3.50 of $4.00")
    tab.screenshot("models-page-budget-alert")
    tab.goto("/account/keys/")
    expect(tab.page.get_by_test_id("alert-banner")).to_have_count(1)
    tab.screenshot("keys-page-budget-alert")

    tab.page.get_by_test_id("alert-banner").get_by_role("button", name="Dismiss").click()
    expect(tab.page).to_have_url(f"{live_app.url}/account/keys/")
    expect(tab.page.get_by_test_id("alert-banner")).to_have_count(0)
    tab.goto("/account/usage/")
    expect(tab.page.get_by_test_id("alert-banner")).to_have_count(0)


def test_staff_set_n_on_the_anomalies_page(new_tab, live_app, staff):
    tab = new_tab(signed_in_as=staff)
    tab.goto("/console/anomalies/")
    field = tab.page.get_by_label("Flag a day above N× its median, N =")
    expect(field).to_have_value("3.00")
    field.fill("0.5")
    tab.page.get_by_test_id("anomaly-factor").get_by_role("button", name="Save").click()
    expect(tab.page.get_by_test_id("factor-error")).to_contain_text("greater than or equal to 1.1")
    tab.screenshot("console-anomalies-factor-error")
    tab.console_errors.clear()  # the page's own 400, as intended

    tab.page.get_by_label("Flag a day above N× its median, N =").fill("4.5")
    tab.page.get_by_test_id("anomaly-factor").get_by_role("button", name="Save").click()
    expect(tab.page.get_by_text("Spend anomalies are now days above 4.5× their median.")).to_be_visible()
    expect(tab.page.get_by_label("Flag a day above N× its median, N =")).to_have_value("4.50")
    tab.screenshot("console-anomalies-factor")
    tab.goto("/console/audit/")
    expect(tab.page.get_by_text("setting.anomaly_factor")).to_be_visible()

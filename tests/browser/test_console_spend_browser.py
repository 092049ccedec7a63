"""The console's spend pages in Chromium: the explorer with its stacked chart (a click on a bar opens that
day), a person's page with budgets, timings and a key revoked, the models page with a price history chart.
Charts are Chart.js from static/vendor, under the strict CSP (the new_tab fixture fails on any violation).
Screenshots go to test-artifacts/."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from freezegun import freeze_time
from playwright.sync_api import expect

from billing.budgets import set_budget
from billing.ledger import Outcome, settle
from billing.models import LedgerEntry
from catalog.models import CatalogModel, PriceChange
from chat.models import Conversation, Message
from console.anomalies import flag_anomalies
from gateway.keys import create_key
from tests.billing.rollups import add_usage

DAY = dt.date(2026, 11, 14)
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "google/gemini-2.5-flash", "meta/llama-3.3-70b"]


@pytest.fixture(autouse=True)
def _mid_month():
    with freeze_time(f"{DAY} 12:00:00", tick=True):
        yield


@pytest.fixture
def month_of_spend(owner, teammate, outsider, staff):
    """30 days of rollup rows for four people over four models and three sources."""
    rng = random.Random(7)
    for offset in range(30):
        for user in (owner, teammate, outsider, staff):
            for model in rng.sample(MODELS, 2):
                add_usage(
                    DAY - dt.timedelta(days=offset),
                    user,
                    model,
                    source=rng.choice(["chat", "api", "batch"]),
                    requests=rng.randrange(1, 40),
                    errors=rng.randrange(0, 2),
                    cost=Decimal(rng.randrange(1, 300)) / 100,
                )


def test_the_explorer_charts_spend_and_a_bar_opens_its_day(new_tab, live_app, staff, month_of_spend):
    tab = new_tab(signed_in_as=staff)
    tab.goto("/account/usage/")
    tab.page.get_by_role("link", name="Console").click()
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Spend explorer")
    expect(tab.page.locator("canvas#spend-chart[data-drawn='4']")).to_be_attached()
    expect(tab.page.get_by_test_id("top-person").locator("tr")).to_have_count(4)
    tab.screenshot("console-explorer")

    tab.page.get_by_label("Stack the chart by").select_option("source")
    tab.page.get_by_label("From", exact=True).fill("2026-11-01")
    tab.page.get_by_label("To", exact=True).fill("2026-11-14")
    tab.page.get_by_role("button", name="Show").click()
    expect(tab.page).to_have_url(f"{live_app.url}/console/?preset=custom&start=2026-11-01&end=2026-11-14&stack=source")
    expect(tab.page.locator("canvas#spend-chart[data-drawn='3']")).to_be_attached()
    tab.screenshot("console-explorer-by-source")

    bar = tab.page.evaluate(
        """() => {
        const chart = Chart.getChart("spend-chart");
        const index = chart.data.datasets.findIndex((set) => set.data.at(-1) > 0);
        const last = chart.getDatasetMeta(index).data.at(-1);
        return { x: last.x, y: (last.y + last.base) / 2, source: chart.data.datasets[index].label };
    }"""
    )  # the last day's bar of its first series with spend that day
    tab.page.locator("canvas#spend-chart").click(position={"x": bar["x"], "y": bar["y"]})
    expect(tab.page).to_have_url(
        f"{live_app.url}/console/?preset=custom&start={DAY}&end={DAY}&stack=source&source={bar['source']}"
    )
    expect(tab.page.get_by_test_id("range")).to_contain_text("14 Nov 2026 – 14 Nov 2026")


def test_a_bad_range_is_a_form_error_in_the_page(new_tab, live_app, staff):
    tab = new_tab(signed_in_as=staff)
    tab.goto("/console/?start=2026-11-10&end=2026-11-01")
    expect(tab.page.get_by_test_id("form-errors")).to_contain_text("The range is reversed")
    tab.screenshot("console-explorer-error")
    assert tab.console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]  # the page's own status, as intended: nothing else went wrong
    tab.console_errors.clear()


def test_a_persons_page_and_revoking_their_key(new_tab, live_app, staff, owner, team_group, month_of_spend):
    set_budget(user=owner, amount=Decimal("40"))
    set_budget(group=team_group, amount=Decimal("500"), period="week")
    key, _ = create_key(owner, "ci-runner")
    for ttft, latency, tokens in [(180, 1200, 300), (240, 2100, 500), (90, 700, 120)]:
        settle(
            Outcome(
                user_id=owner.pk, source="api", requested_model=MODELS[0], served_model=MODELS[0], status="ok",
                cost=Decimal("0.0123"), cost_source=LedgerEntry.CostSource.REPORTED, api_key_id=key.pk,
                completion_tokens=tokens, ttft_ms=ttft, latency_ms=latency,
            )
        )  # fmt: skip
    tab = new_tab(signed_in_as=staff)
    tab.goto(f"/console/person/{owner.username}/")
    expect(tab.page.locator("canvas#person-chart[data-drawn]")).to_be_attached()
    expect(tab.page.get_by_test_id("budgets").locator("tbody tr")).to_have_count(2)
    expect(tab.page.get_by_test_id("models")).to_contain_text("180 ms")
    expect(tab.page.get_by_test_id("keys").get_by_role("link", name="$0.0369")).to_be_visible()
    tab.screenshot("console-person")

    tab.page.get_by_role("button", name="Revoke").click()
    expect(tab.page.get_by_text("Revoked olivia's key “ci-runner”.")).to_be_visible()
    expect(tab.page.get_by_test_id("keys")).to_contain_text("revoked")


def test_the_models_page_charts_a_price_history(new_tab, live_app, staff, owner, month_of_spend):
    per_million = Decimal("0.000001")
    for model_id in MODELS:
        CatalogModel.objects.create(
            id=model_id, name=model_id, prompt_price=per_million, completion_price=4 * per_million
        )
    CatalogModel.objects.filter(pk=MODELS[0]).update(
        prompt_price=Decimal("0.15") * per_million, completion_price=Decimal("0.6") * per_million
    )
    leaving = CatalogModel.objects.get(pk=MODELS[3])
    leaving.expiration_date = DAY + dt.timedelta(days=12)
    leaving.save()
    for days_ago, prompt, completion in [(120, "0.3", "1.2"), (60, "0.2", "0.8"), (9, "0.15", "0.6")]:
        PriceChange.objects.create(
            model_id=MODELS[0],
            prompt_price=Decimal(prompt) * per_million,
            completion_price=Decimal(completion) * per_million,
            effective_from=dt.datetime.combine(DAY - dt.timedelta(days=days_ago), dt.time(), tzinfo=dt.UTC),
        )
    tab = new_tab(signed_in_as=staff)
    tab.goto(f"/console/models/?model={MODELS[0]}")
    expect(tab.page.locator("canvas#price-chart[data-drawn='2']")).to_be_attached()
    expect(tab.page.get_by_test_id("changes")).to_contain_text("$0.20 → $0.15")
    expect(tab.page.get_by_test_id("retiring")).to_contain_text(MODELS[3])
    tab.screenshot("console-models")


def test_the_anomalies_page_and_its_banner(new_tab, live_app, staff, owner, month_of_spend):
    add_usage(DAY, owner, MODELS[1], cost=Decimal("80"))
    assert flag_anomalies() == 1
    tab = new_tab(signed_in_as=staff)
    tab.goto("/console/budgets/")
    banner = tab.page.get_by_test_id("anomaly-banner")
    expect(banner).to_contain_text("1 spend anomaly")
    banner.get_by_role("link", name="Review").click()
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Spend anomalies")
    expect(tab.page.get_by_test_id("anomalies")).to_contain_text("olivia")
    tab.screenshot("console-anomalies")
    tab.page.get_by_test_id("anomalies").get_by_role("link", name="$8").first.click()
    expect(tab.page.locator("canvas#spend-chart[data-drawn]")).to_be_attached()
    expect(tab.page.get_by_test_id("range")).to_contain_text("person: olivia")


def test_opening_a_transcript_asks_a_reason_and_the_person_sees_it(new_tab, live_app, staff, owner):
    chat = Conversation.objects.create(user=owner, title="private", model=MODELS[0])
    Message.objects.create(conversation=chat, role="user", content="<b>not bold</b>\nsecond line")
    tab = new_tab(signed_in_as=staff)
    tab.goto(f"/console/person/{owner.username}/")
    form = tab.page.get_by_test_id("transcript-form")
    form.get_by_role("button", name="Open transcript").click()
    expect(form.get_by_label("Reason (required)")).to_have_js_property("validity.valid", False)
    form.get_by_label("Reason (required)").fill("Abuse report 4411")
    form.get_by_role("button", name="Open transcript").click()
    expect(tab.page.get_by_test_id("transcript")).to_contain_text("<b>not bold</b>")
    expect(tab.page.get_by_test_id("transcript-note")).to_contain_text("Reason: Abuse report 4411")
    tab.screenshot("console-transcript")

    own = new_tab(signed_in_as=owner)
    own.goto("/account/usage/")
    expect(own.page.get_by_test_id("transcript-openings")).to_contain_text("stella opened conversation")
    own.screenshot("usage-transcript-openings")

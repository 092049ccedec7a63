"""The models page in a real browser: htmx updates under the strict CSP, URLs that follow the filters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from catalog.sync import sync_from_openrouter
from orweb.devstack import CHROMIUM
from tests.helpers.personas import PASSWORD

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def page(live_app, owner):
    sync_from_openrouter()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(f"{live_app.url}/models/")
        page.fill("input[name=username]", owner.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/models/")
        page.problems = problems
        yield page
        browser.close()


def test_searching_filtering_and_sorting_update_the_results_and_the_url(page):
    rows = page.locator("#results tbody tr")
    expect(page.locator(".catalog-count")).to_contain_text("models")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "catalog.png"), full_page=False)

    page.keyboard.press("/")
    page.keyboard.type("claude")
    expect(page).to_have_url(re.compile(r"q=claude"))
    expect(rows.first).to_contain_text("Claude")
    assert all("claude" in text.lower() for text in rows.locator(".model-id").all_inner_texts())

    page.get_by_label("Tools").check()
    expect(page).to_have_url(re.compile(r"tools=1"))

    page.locator("th a.sort-link", has_text="Prompt / 1M").click()
    expect(page).to_have_url(re.compile(r"(?=.*sort=prompt)(?=.*q=claude)"))
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Prompt")

    page.locator("#catalog-q").fill("no such model at all")
    expect(page.locator("#results")).to_contain_text("No models match these filters.")
    assert page.problems == []

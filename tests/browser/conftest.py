"""Chromium through Playwright against the live app (uvicorn + the simulator), with a signed-in page.

Playwright's sync API runs its own event loop in this thread; pytest-django's database access from the
same thread is then flagged as "async unsafe", which it isn't here: hence DJANGO_ALLOW_ASYNC_UNSAFE.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.personas import signed_in

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="package")
def browser() -> Iterator:
    """One Chromium for these tests (a launch costs about a second); each test gets fresh contexts.

    Package scope, not session: Playwright's sync API keeps an event loop running in this thread while
    it is open, which would break every pytest-asyncio test collected after this package."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--headless=new",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


class Tab:
    """A browser page that records what a hostile reply would try: dialogs, foreign requests, errors."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.dialogs: list[str] = []
        self.hosts: set[str] = set()
        self.console_errors: list[str] = []
        page.set_default_timeout(TIMEOUT_MS)
        page.on("dialog", self._on_dialog)
        page.on(
            "request",
            lambda request: self.hosts.add(request.url.split("/")[2] if "//" in request.url else ""),
        )
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _session_cookie(user, url: str) -> dict:
    from django.conf import settings

    client = signed_in(user)
    return {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": url,
    }


def _wait_for_chat_work(timeout: float = 20) -> None:
    """Replies and title jobs outlive the tab by design; let them finish before the database is flushed
    (a flush racing a runner's row locks deadlocks). `runner.drain()` would need the server's loop."""
    from chat import runner

    deadline = time.monotonic() + timeout
    while runner.busy():
        assert time.monotonic() < deadline, "chat work still running long after the test"
        time.sleep(0.05)


@pytest.fixture
def new_tab(browser, live_app):
    """Opens tabs; `signed_in_as` gives them a session without going through the form again."""
    contexts = []
    tabs: list[Tab] = []

    def open_tab(signed_in_as=None, color_scheme: str = "light", width: int = 1280, height: int = 860) -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=color_scheme)
        if signed_in_as is not None:
            context.add_cookies([_session_cookie(signed_in_as, live_app.url)])
        contexts.append(context)
        tabs.append(Tab(context.new_page(), live_app.url))
        return tabs[-1]

    yield open_tab
    for context in contexts:
        context.close()
    _wait_for_chat_work()
    # A CSP violation or a script error shows up here, whatever the test was about.
    assert [e for t in tabs for e in t.console_errors] == []


@pytest.fixture
def tab(new_tab, owner, catalog) -> Tab:
    return new_tab(signed_in_as=owner)

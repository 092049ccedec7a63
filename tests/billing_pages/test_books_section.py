"""The team page's "Ledger vs OpenRouter": staff see the last seven UTC days of the books check, drift
marked; members and strangers don't see the page at all."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from billing.models import BooksCheck

pytestmark = pytest.mark.django_db

TEAM = reverse("account:team")


@pytest.fixture(autouse=True)
def _fixed_day():
    with freeze_time("2026-03-18 10:00"):
        yield


def _checked(day: int, ledger: str, openrouter: str, *, over_checks: int = 0, alerted: bool = False) -> None:
    BooksCheck.objects.create(
        day=dt.date(2026, 3, day),
        ledger=Decimal(ledger),
        openrouter=Decimal(openrouter),
        checked_at=dt.datetime(2026, 3, day, 9, 52, tzinfo=dt.UTC),
        over_checks=over_checks,
        alerted_at=dt.datetime(2026, 3, day, 9, 52, tzinfo=dt.UTC) if alerted else None,
    )


def _row(html: str, day: str) -> str:
    match = re.search(rf'<tr data-day="{day}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"no row for {day}"
    return " ".join(match.group(0).split())


def test_staff_see_ledger_vs_openrouter_for_the_last_seven_days(staff_client):
    _checked(18, "1.25", "1.25")
    _checked(17, "3.10", "4.60", over_checks=3, alerted=True)
    _checked(10, "9", "1")  # eight days ago: not shown

    html = staff_client.get(TEAM).content.decode()

    assert "Ledger vs OpenRouter" in html and "beyond 1% or $0.10" in html
    assert html.count("<tr data-day=") == 7
    today = _row(html, "2026-03-18")
    assert "$1.25</td>" in today and "In step" in today and "$0</td>" in today and "drifted" not in today
    drifted = _row(html, "2026-03-17")
    assert 'class="drifted"' in drifted and "Drifted</strong>, staff mailed" in drifted
    assert "$3.10</td>" in drifted and "$4.60</td>" in drifted and "-$1.50</td>" in drifted
    assert "Not checked" in _row(html, "2026-03-16")
    assert 'data-day="2026-03-10"' not in html


def test_before_any_check_it_says_so(staff_client):
    html = staff_client.get(TEAM).content.decode()
    assert "No check has run yet." in html and "<tr data-day=" not in html


def test_members_and_strangers_cannot_see_it(owner_client):
    _checked(18, "1", "2", over_checks=2)
    assert owner_client.get(TEAM).status_code == 403
    assert Client().get(TEAM).status_code == 302

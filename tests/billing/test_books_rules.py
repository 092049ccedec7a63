"""Books that balance, the rules around one check, with OpenRouter's `/key` answer set by the test: when
drift is drift, when staff hear of it, what is recorded when the answer is missing or midnight intervenes,
and the days the team page lists."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from freezegun import freeze_time

from billing.books import check_books, recent_books
from billing.ledger import Outcome, settle
from billing.models import BooksCheck
from openrouter import RateLimited

pytestmark = pytest.mark.django_db


class FakeKey:
    """Stands in for the OpenRouter client: `key()` answers `usage_daily` (or raises `error`)."""

    def __init__(self) -> None:
        self.usage_daily: Any = 0
        self.error: Exception | None = None
        self.during: Any = None  # called while the request is "on the wire"

    async def key(self) -> dict[str, Any]:
        if self.during is not None:
            self.during()
        if self.error is not None:
            raise self.error
        return {"usage_daily": self.usage_daily, "usage": 123}


@pytest.fixture
def openrouter(monkeypatch) -> FakeKey:
    fake = FakeKey()
    monkeypatch.setattr("billing.books.get_client", lambda: fake)
    return fake


@pytest.fixture(autouse=True)
def _staff_address(staff) -> None:
    staff.email = "stella@example.com"
    staff.save()


def _charged(owner, cost: str) -> None:
    settle(Outcome(user_id=owner.pk, source="chat", requested_model="m", status="ok", cost=Decimal(cost)))


def test_the_fake_answers_as_the_client_does(openrouter):
    from asgiref.sync import async_to_sync

    from billing.books import fetch_usage_today

    openrouter.usage_daily = 0.0123456789
    assert async_to_sync(fetch_usage_today)() == Decimal("0.0123456789")


def test_one_row_per_day_rewritten_by_each_check(openrouter, owner):
    with freeze_time("2026-03-01 10:07"):
        _charged(owner, "0.2")
        openrouter.usage_daily = 0.2
        check_books()
    with freeze_time("2026-03-01 10:22"):
        _charged(owner, "0.3")
        openrouter.usage_daily = 0.5
        check_books()
    with freeze_time("2026-03-02 00:07"):
        openrouter.usage_daily = 0
        check_books()

    rows = list(BooksCheck.objects.order_by("day").values_list("day", "ledger", "openrouter", "checked_at"))
    assert rows == [
        (dt.date(2026, 3, 1), Decimal("0.5"), Decimal("0.5"), dt.datetime(2026, 3, 1, 10, 22, tzinfo=dt.UTC)),
        (dt.date(2026, 3, 2), 0, 0, dt.datetime(2026, 3, 2, 0, 7, tzinfo=dt.UTC)),
    ]


def test_drift_that_passes_starts_the_count_again(openrouter, owner):
    _charged(owner, "0.5")
    assert check_books().over_checks == 1
    openrouter.usage_daily = 0.5  # OpenRouter's figure caught up: it was a call in flight
    assert check_books().over_checks == 0
    openrouter.usage_daily = 0
    assert check_books().over_checks == 1
    assert mail.outbox == []
    assert check_books().over_checks == 2
    assert len(mail.outbox) == 1


def test_how_many_checks_in_a_row_make_an_alert_is_a_setting(openrouter, owner, settings):
    settings.BOOKS_DRIFT_CHECKS = 1
    openrouter.usage_daily = 2
    row = check_books()
    assert row.drift == -2 and row.alerted_at is not None
    assert "by $2.00 on" in mail.outbox[0].subject and "missing from the ledger" in mail.outbox[0].body


def test_a_day_in_step_never_alerts_even_when_no_check_is_required(openrouter, settings):
    settings.BOOKS_DRIFT_CHECKS = 0
    assert check_books().alerted_at is None
    assert mail.outbox == []


def test_a_failed_mail_is_sent_again_by_the_next_check(openrouter, owner, settings):
    _charged(owner, "1")
    check_books()
    settings.EMAIL_BACKEND = "tests.billing.test_books_rules.BrokenBackend"
    assert check_books().alerted_at is None
    assert BooksCheck.objects.get().alerted_at is None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert check_books().alerted_at is not None
    assert len(mail.outbox) == 1


def test_without_staff_addresses_the_drift_is_claimed_and_logged(openrouter, owner, staff, caplog):
    staff.email = ""
    staff.save()
    _charged(owner, "1")
    check_books()
    assert check_books().alerted_at is not None
    assert mail.outbox == []
    assert "books: the ledger has 1.0000000000" in caplog.text


@pytest.mark.parametrize("answer", [None, "lots", True, -1, "NaN", "1e30", {"usd": 1}])
def test_an_unusable_usage_daily_records_nothing(openrouter, answer, caplog):
    openrouter.usage_daily = answer
    assert check_books() is None
    assert not BooksCheck.objects.exists()
    assert "no usable usage_daily" in caplog.text


def test_an_openrouter_error_records_nothing(openrouter, caplog):
    openrouter.error = RateLimited("slow down", status=429)
    assert check_books() is None
    assert not BooksCheck.objects.exists()
    assert "the next check retries" in caplog.text


def test_midnight_during_the_check_records_nothing(openrouter, owner):
    """usage_daily read after midnight is the new day's: set beside the old day's ledger it would lie."""
    with freeze_time("2026-03-01 23:59:59") as clock:
        _charged(owner, "0.4")
        openrouter.during = lambda: clock.tick(dt.timedelta(seconds=2))
        assert check_books() is None
    assert not BooksCheck.objects.exists()


def test_the_page_lists_the_last_seven_days_newest_first(openrouter):
    assert recent_books().days == []
    with freeze_time("2026-03-01 12:00"):
        BooksCheck.objects.create(day=dt.date(2026, 2, 1), ledger=1, openrouter=1, checked_at="2026-02-01T23:58Z")
        assert [line.check for line in recent_books().days] == [None] * 7  # checks stopped: every day shows it
        check_books()
    with freeze_time("2026-03-03 12:00"):
        report = recent_books()
    assert [line.day.day for line in report.days] == [3, 2, 1, 28, 27, 26, 25]
    assert [line.check is not None for line in report.days] == [False, False, True, False, False, False, False]
    assert (report.percent, report.usd) == ("1", Decimal("0.10"))


class BrokenBackend:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("no mail server")

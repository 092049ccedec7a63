"""Books that balance: each UTC day, the ledger's total beside OpenRouter's own account of the key's usage.

OpenRouter's `GET /key` reports `usage_daily`, what the server key has been billed so far in the current
UTC day (it starts again at UTC midnight). A generation orweb never learned of (its id lost before the
headers came, a path that skipped the gateway) is billed there and absent here, so it shows up as drift
between the two; nothing else can catch it.

`usage_daily` only ever tells of today, so the check runs through the day (see orweb.schedules) and keeps
one row per day, rewritten by each check: the day's last check is its verdict. A check sees calls in
flight and estimated costs not yet reconciled as small, passing differences; drift counts only beyond a
threshold, and staff hear of it (once per day) only when it lasted `BOOKS_DRIFT_CHECKS` checks in a row.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from billing.alerts import staff_addresses
from billing.ledger import rollup_day
from billing.models import BooksCheck, DailyUsage
from openrouter import OpenRouterError
from orweb.money import format_usd
from orweb.upstream import get_client

log = logging.getLogger(__name__)

PLACES = Decimal("1e-10")  # the ledger's precision
PAGE_DAYS = 7


def threshold(openrouter: Decimal) -> Decimal:
    """How far apart the two totals may be before it counts as drift: the larger of a share of
    OpenRouter's figure and a fixed amount (settings BOOKS_DRIFT_PERCENT, BOOKS_DRIFT_USD)."""
    share = openrouter * Decimal(str(settings.BOOKS_DRIFT_PERCENT)) / 100
    return max(share, Decimal(str(settings.BOOKS_DRIFT_USD)))


def ledger_total(day: dt.date) -> Decimal:
    """Everything the ledger charged on a UTC day, from the daily rollup (settle and reconciliation keep
    it equal to the ledger rows of that day, by `billing.ledger.rollup_day`)."""
    return DailyUsage.objects.filter(day=day).aggregate(total=Sum("cost"))["total"] or Decimal(0)


def _amount(value: Any) -> Decimal | None:
    """A JSON number of USD as an exact Decimal, or None if it isn't one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
        return amount.quantize(PLACES) if amount.is_finite() and amount >= 0 else None
    except (InvalidOperation, ValueError):
        return None


async def fetch_usage_today() -> Decimal | None:
    """OpenRouter's `usage_daily` for the server key, or None when it can't be had (logged)."""
    try:
        data = await get_client().key()
    except OpenRouterError as error:
        log.warning("books: could not read the key's usage from OpenRouter (%s); the next check retries", error)
        return None
    usage = _amount(data.get("usage_daily"))
    if usage is None:
        log.warning("books: OpenRouter's /key has no usable usage_daily: %r", data.get("usage_daily"))
    return usage


def check_books() -> BooksCheck | None:
    """Compare today's ledger with OpenRouter's `usage_daily`, record both on today's row and alert staff
    of lasting drift; None (nothing recorded) when OpenRouter can't be read or midnight fell mid-check.

    /key is read before the ledger: a call that ends in between is then in the ledger and not yet in
    OpenRouter's figure, a passing excess, rather than looking like a generation the ledger missed."""
    day = rollup_day(timezone.now())
    openrouter = async_to_sync(fetch_usage_today)()
    if openrouter is None:
        return None
    ledger = ledger_total(day)
    now = timezone.now()
    if rollup_day(now) != day:
        log.info("books: UTC midnight passed during the check of %s; nothing recorded", day)
        return None
    over = abs(ledger - openrouter) > threshold(openrouter)
    with transaction.atomic():
        row, _ = BooksCheck.objects.select_for_update().get_or_create(
            day=day, defaults={"ledger": ledger, "openrouter": openrouter, "checked_at": now}
        )
        row.ledger, row.openrouter, row.checked_at = ledger, openrouter, now
        row.over_checks = row.over_checks + 1 if over else 0
        row.save()
    if over:
        log.warning(
            "books: the ledger has %s for %s, OpenRouter %s (drift %s, %s check(s) in a row)",
            ledger,
            day,
            openrouter,
            row.drift,
            row.over_checks,
        )
    if over and row.over_checks >= settings.BOOKS_DRIFT_CHECKS:
        _alert(row)
    return row


def _message(row: BooksCheck) -> tuple[str, str]:
    subject = f"orweb: the ledger and OpenRouter disagree by {format_usd(abs(row.drift))} on {row.day}"
    direction = (
        "OpenRouter billed more than the ledger recorded: some calls may be missing from the ledger"
        if row.drift < 0
        else "The ledger recorded more than OpenRouter billed"
    )
    body = (
        f"On {row.day} (UTC), as of {row.checked_at:%H:%M} UTC:\n"
        f"  ledger      {format_usd(row.ledger)}\n"
        f"  OpenRouter  {format_usd(row.openrouter)} (usage_daily of the server key)\n"
        f"  drift       {format_usd(row.drift)}, {row.over_checks} checks in a row\n\n"
        f"{direction}.\n\n"
        f"Team spend (staff): {settings.ORWEB_SITE_URL}{reverse('account:team')}\n"
    )
    return subject, body


def _alert(row: BooksCheck) -> None:
    """Mail staff once per day row: claimed by a conditional UPDATE first, so two workers never both send;
    a failed send gives the claim back for the next check."""
    claimed = timezone.now()
    if not BooksCheck.objects.filter(pk=row.pk, alerted_at=None).update(alerted_at=claimed):
        return  # another check has it
    to = staff_addresses()
    try:
        if to:
            send_mail(*_message(row), None, to)
    except Exception:
        BooksCheck.objects.filter(pk=row.pk).update(alerted_at=None)
        log.exception("books: could not mail staff about the drift of %s; trying again next check", row.day)
        return
    row.alerted_at = claimed
    log.info("books: told %s staff about the drift of %s", len(to), row.day)


@dataclass(frozen=True)
class BooksDay:
    """One line of "Ledger vs OpenRouter" on the team page: a day, with its check if one ran."""

    day: dt.date
    check: BooksCheck | None


@dataclass(frozen=True)
class BooksReport:
    """The team page's "Ledger vs OpenRouter": the last days, newest first, and the rule for drift.
    `days` is empty when no check has ever run."""

    days: list[BooksDay]
    percent: str
    usd: Decimal


def recent_books(days: int = PAGE_DAYS) -> BooksReport:
    """The last `days` UTC days, each with its check (None where none ran: a beat that stopped shows)."""
    last = rollup_day(timezone.now())
    first = last - dt.timedelta(days=days - 1)
    checks = {row.day: row for row in BooksCheck.objects.filter(day__gte=first, day__lte=last)}
    lines = [BooksDay(day, checks.get(day)) for day in (last - dt.timedelta(days=n) for n in range(days))]
    return BooksReport(
        days=lines if checks or BooksCheck.objects.exists() else [],
        percent=format(Decimal(str(settings.BOOKS_DRIFT_PERCENT)).normalize(), "f"),
        usd=Decimal(str(settings.BOOKS_DRIFT_USD)),
    )

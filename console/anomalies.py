"""Spend anomalies: a person's or an API key's day that cost more than N times the median of its 14 days
before (N is ORWEB_ANOMALY_FACTOR, 3 by default), ignoring days below ORWEB_ANOMALY_FLOOR_USD so a cent after
a quiet fortnight raises nothing. Each is flagged once per subject and day, for the console's list and the
banner on the admins' pages; a Celery beat task (console.tasks) runs `flag_anomalies` through the day.

A day with no spend counts as $0 in the median: a person who used orweb twice in two weeks has a median of
$0, so any day of theirs above the floor stands out, which is the point.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from statistics import median
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import TruncDate

from billing.budgets import today
from billing.models import DailyPersonUsage, LedgerEntry
from console.models import SpendAnomaly

WINDOW = 14


@dataclass(frozen=True)
class Verdict:
    cost: Decimal
    median: Decimal


def check(history: Iterable[Decimal], cost: Decimal, *, factor: Decimal, floor: Decimal) -> Verdict | None:
    """The verdict on one day's `cost` against the `WINDOW` days before it (`history`, oldest first, a
    missing day as 0): a Verdict when it is an anomaly, else None."""
    days = list(history)[-WINDOW:]
    days = [Decimal(0)] * (WINDOW - len(days)) + days
    middle = Decimal(median(days))
    if cost < floor or cost <= factor * middle:
        return None
    return Verdict(cost=cost, median=middle)


def _series(costs: Mapping[dt.date, Decimal], day: dt.date) -> list[Decimal]:
    return [costs.get(day - dt.timedelta(days=back), Decimal(0)) for back in range(WINDOW, 0, -1)]


def _person_costs(first: dt.date, day: dt.date) -> dict[Any, dict[dt.date, Decimal]]:
    by_person: dict[Any, dict[dt.date, Decimal]] = defaultdict(dict)
    rows = DailyPersonUsage.objects.filter(day__range=(first, day)).values_list("user_id", "day", "cost")
    for user_id, when, cost in rows:
        by_person[user_id][when] = cost
    return by_person


def _key_costs(first: dt.date, day: dt.date) -> dict[Any, dict[dt.date, Decimal]]:
    """Only the ledger knows the key: the API calls of the window, summed per key and day by PostgreSQL."""
    since = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    until = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    rows = (
        LedgerEntry.objects.filter(api_key_id__isnull=False, created__gte=since, created__lt=until)
        .annotate(day=TruncDate("created", tzinfo=dt.UTC))
        .values("api_key_id", "user_id", "day")
        .annotate(cost=Sum("cost"))
    )
    by_key: dict[Any, dict[dt.date, Decimal]] = defaultdict(dict)
    for row in rows:
        by_key[(row["api_key_id"], row["user_id"])][row["day"]] = row["cost"]
    return by_key


def flag_anomalies(day: dt.date | None = None) -> int:
    """Flag every person and API key whose spend on `day` (today by default, so far) is an anomaly and isn't
    flagged yet; how many were flagged."""
    day = day or today()
    first = day - dt.timedelta(days=WINDOW)
    factor = Decimal(str(settings.ORWEB_ANOMALY_FACTOR))
    floor = Decimal(str(settings.ORWEB_ANOMALY_FLOOR_USD))
    found = []
    for user_id, costs in _person_costs(first, day).items():
        verdict = check(_series(costs, day), costs.get(day, Decimal(0)), factor=factor, floor=floor)
        if verdict:
            found.append(SpendAnomaly(kind=SpendAnomaly.Kind.PERSON, user_id=user_id, day=day, **_fields(verdict)))
    for (key_id, user_id), costs in _key_costs(first, day).items():
        verdict = check(_series(costs, day), costs.get(day, Decimal(0)), factor=factor, floor=floor)
        if verdict:
            key = {"kind": SpendAnomaly.Kind.KEY, "user_id": user_id, "api_key_id": key_id}
            found.append(SpendAnomaly(**key, day=day, **_fields(verdict)))
    # Already flagged (an earlier run today, or another worker): the partial unique constraints skip it.
    before = SpendAnomaly.objects.filter(day=day).count()
    SpendAnomaly.objects.bulk_create(found, ignore_conflicts=True)
    return SpendAnomaly.objects.filter(day=day).count() - before


def _fields(verdict: Verdict) -> dict[str, Decimal]:
    return {"cost": verdict.cost, "median": verdict.median, "factor": Decimal(str(settings.ORWEB_ANOMALY_FACTOR))}


@dataclass(frozen=True)
class Line:
    """One anomaly on the console's list: how many times its median it cost, and the explorer's query of
    that person or key on that day."""

    anomaly: SpendAnomaly
    times: Decimal | None
    link: str


def recent(days: int = 30) -> list[Line]:
    """The anomalies of the last `days` days, newest first, each linking to the explorer filtered to it."""
    since = today() - dt.timedelta(days=days - 1)
    lines = []
    for anomaly in SpendAnomaly.objects.filter(day__gte=since).select_related("user").order_by("-day", "-cost"):
        filters = {"person": anomaly.user.get_username()}
        if anomaly.kind == SpendAnomaly.Kind.KEY:
            filters["key"] = str(anomaly.api_key_id)
        day = anomaly.day.isoformat()
        link = "?" + urlencode({"preset": "custom", "start": day, "end": day, **filters})
        times = (anomaly.cost / anomaly.median).quantize(Decimal("0.1")) if anomaly.median else None
        lines.append(Line(anomaly=anomaly, times=times, link=link))
    return lines

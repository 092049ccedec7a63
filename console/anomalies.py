"""Spend anomalies: a person's or an API key's day that cost more than N times the median of its 14 days
before (N as staff set it on the anomalies page, else ORWEB_ANOMALY_FACTOR, 3 by default), ignoring days
below ORWEB_ANOMALY_FLOOR_USD so a cent after a quiet fortnight raises nothing. Each is flagged once per
subject and day, for the console's list and the banner on the admins' pages; a Celery beat task
(console.tasks) runs `flag_anomalies` through the day.

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

from django import forms
from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from billing.budgets import today
from billing.models import DailyKeyUsage, DailyPersonUsage
from console.audit import record
from console.models import AnomalySetting, SpendAnomaly

WINDOW = 14


def default_factor() -> Decimal:
    """N from the environment (ORWEB_ANOMALY_FACTOR): what applies until staff set one."""
    return Decimal(str(settings.ORWEB_ANOMALY_FACTOR)).quantize(Decimal("0.01"))


def current_factor() -> Decimal:
    """N as staff set it on the anomalies page, else the environment's."""
    stored = AnomalySetting.objects.filter(pk=1).values_list("factor", flat=True).first()
    return default_factor() if stored is None else stored


class FactorForm(forms.Form):
    """N as staff type it: above 1 (at 1 every day above its median would be flagged), at most 100."""

    factor = forms.DecimalField(
        label="N", min_value=Decimal("1.1"), max_value=Decimal(100), max_digits=5, decimal_places=2
    )


def set_factor(actor: Any, factor: Decimal) -> None:
    """Store N, audit-logged with the value before (the environment's when none was stored) and after."""
    with transaction.atomic():
        AnomalySetting.objects.get_or_create(pk=1, defaults={"factor": default_factor()})
        row = AnomalySetting.objects.select_for_update().get(pk=1)
        before = row.factor
        row.factor = factor
        row.save()
        record(actor, "setting.anomaly_factor", "setting", row, {"factor": before}, {"factor": factor})


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
    """The window's spend per person and day, from the person rollup (a row per source: summed here)."""
    rows = DailyPersonUsage.objects.filter(day__range=(first, day)).values("user_id", "day").annotate(cost=Sum("cost"))
    by_person: dict[Any, dict[dt.date, Decimal]] = defaultdict(dict)
    for row in rows:
        by_person[row["user_id"]][row["day"]] = row["cost"]
    return by_person


def _key_costs(first: dt.date, day: dt.date) -> dict[Any, dict[dt.date, Decimal]]:
    """The window's spend per API key and day, from the key rollup (a row per model and source: summed)."""
    rows = (
        DailyKeyUsage.objects.filter(day__range=(first, day))
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
    factor = current_factor()
    floor = Decimal(str(settings.ORWEB_ANOMALY_FLOOR_USD))
    found = []
    for user_id, costs in _person_costs(first, day).items():
        verdict = check(_series(costs, day), costs.get(day, Decimal(0)), factor=factor, floor=floor)
        if verdict:
            person = {"kind": SpendAnomaly.Kind.PERSON, "user_id": user_id}
            found.append(SpendAnomaly(**person, day=day, cost=verdict.cost, median=verdict.median, factor=factor))
    for (key_id, user_id), costs in _key_costs(first, day).items():
        verdict = check(_series(costs, day), costs.get(day, Decimal(0)), factor=factor, floor=floor)
        if verdict:
            key = {"kind": SpendAnomaly.Kind.KEY, "user_id": user_id, "api_key_id": key_id}
            found.append(SpendAnomaly(**key, day=day, cost=verdict.cost, median=verdict.median, factor=factor))
    # Already flagged (an earlier run today, or another worker): the partial unique constraints skip it.
    before = SpendAnomaly.objects.filter(day=day).count()
    SpendAnomaly.objects.bulk_create(found, ignore_conflicts=True)
    return SpendAnomaly.objects.filter(day=day).count() - before


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

"""One person as an admin sees them: spend over time and by model, their budgets with a projection to the
period's end, how their calls went per model, their API keys and batch jobs. Never content: only counts,
money, timings, names and statuses are read.

Spend comes from the rollup. The per-model timings (median time to first token, median tokens/s) come from
the person's latest calls in the ledger, through its `(user, created)` index.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from statistics import median
from typing import Any

from django.db.models import Sum, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from batches.models import BatchJob
from billing.budgets import BudgetStatus, status_for
from billing.models import DailyKeyUsage, LedgerEntry
from console.explorer import chart
from console.filters import Selection
from console.spend import Figures, grouped, totals
from gateway.models import ApiKey

JOBS = 20
TIMING_SAMPLE = 2000


@dataclass(frozen=True)
class BudgetLine:
    status: BudgetStatus
    projected: Decimal | None

    @property
    def used(self) -> Decimal:
        return self.status.spent + self.status.held

    @property
    def over(self) -> bool:
        return self.projected is not None and self.projected > self.status.limit


@dataclass(frozen=True)
class ModelLine:
    model: str
    figures: Figures
    median_ttft_ms: float | None
    median_tokens_per_second: float | None
    link: str

    @property
    def error_percent(self) -> Decimal:
        if not self.figures.requests:
            return Decimal(0)
        return (Decimal(self.figures.errors) * 100 / self.figures.requests).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class KeyLine:
    key: ApiKey
    figures: Figures
    link: str


@dataclass(frozen=True)
class PersonPage:
    person: Any
    selection: Selection
    total: Figures
    chart: dict[str, Any]
    budgets: list[BudgetLine]
    models: list[ModelLine]
    keys: list[KeyLine]
    jobs: list[BatchJob]

    @property
    def error_percent(self) -> Decimal:
        if not self.total.requests:
            return Decimal(0)
        return (Decimal(self.total.errors) * 100 / self.total.requests).quantize(Decimal("0.1"))


def projection(status: BudgetStatus, now: dt.datetime) -> Decimal | None:
    """What the period will have spent at its end if spending goes on at its rate so far; None before
    any time has passed."""
    start = dt.datetime.combine(status.period_start, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(status.period_end, dt.time(), tzinfo=dt.UTC)
    elapsed = Decimal((min(now, end) - start).total_seconds())
    if elapsed <= 0:
        return None
    return (status.spent * Decimal((end - start).total_seconds()) / elapsed).quantize(Decimal("0.0000000001"))


def _ledger_range(person: Any, selection: Selection) -> Any:
    since = dt.datetime.combine(selection.start, dt.time(), tzinfo=dt.UTC)
    until = dt.datetime.combine(selection.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return LedgerEntry.objects.filter(user=person, created__gte=since, created__lt=until)


def _timings(person: Any, selection: Selection) -> dict[str, dict[str, Any]]:
    """Median TTFT and median generation speed per served model, over the person's latest TIMING_SAMPLE
    successful calls in the range: read backwards along the ledger's `(user, created)` index, so a person
    with a million calls costs no more than one with a thousand. The medians are taken here: PostgreSQL
    planned the aggregate over `pk IN (the sample)` as a scan of the whole ledger."""
    served = Coalesce(NullIf("served_model", Value("")), "requested_model")
    latest = (
        _ledger_range(person, selection)
        .filter(status=LedgerEntry.Status.OK)
        .order_by("-created")
        .annotate(served=served)
        .values_list("served", "ttft_ms", "completion_tokens", "latency_ms")[:TIMING_SAMPLE]
    )
    ttfts: dict[str, list[int]] = defaultdict(list)
    speeds: dict[str, list[float]] = defaultdict(list)
    for model, ttft, tokens, latency in latest:
        if ttft is None:
            continue
        ttfts[model].append(ttft)
        if tokens > 0 and latency != ttft:
            speeds[model].append(tokens * 1000.0 / (latency - ttft))
    return {
        model: {
            "ttft": float(median(values)) if values else None,
            "speed": median(speeds[model]) if speeds[model] else None,
        }
        for model, values in ttfts.items()
    }


def _keys(person: Any, selection: Selection) -> list[KeyLine]:
    """The person's keys, live ones first, each with its spend and calls in the range linking to the
    explorer filtered by it: one query of the key rollup for all of them."""
    keys = list(ApiKey.objects.filter(user=person).order_by("revoked_at", "-created", "-pk"))
    used = {
        row["api_key_id"]: Figures(cost=row["cost"], requests=row["requests"])
        for row in DailyKeyUsage.objects.filter(
            api_key_id__in=[key.pk for key in keys], day__range=(selection.start, selection.end)
        )
        .values("api_key_id")
        .annotate(cost=Sum("cost"), requests=Sum("requests"))
    }
    return [KeyLine(key=key, figures=used.get(key.pk, Figures()), link=selection.query(key=key.pk)) for key in keys]


def person_page(person: Any, selection: Selection) -> PersonPage:
    """Everything the person page shows for one person over the selection's range."""
    timings = _timings(person, selection)
    models = [
        ModelLine(
            model=row.key["model"],
            figures=row.figures,
            median_ttft_ms=timings.get(row.key["model"], {}).get("ttft"),
            median_tokens_per_second=timings.get(row.key["model"], {}).get("speed"),
            link=selection.query(model=row.key["model"]),
        )
        for row in grouped(selection, ("model",))
    ]
    now = timezone.now()
    jobs = (
        BatchJob.objects.filter(user=person)
        .only("id", "status", "created", "total", "completed", "failed", "cost", "default_model", "finished_at")
        .order_by("-created")[:JOBS]
    )
    return PersonPage(
        person=person,
        selection=selection,
        total=totals(selection),
        chart=chart(selection),
        budgets=[BudgetLine(status, projection(status, now)) for status in status_for(person)],
        models=models,
        keys=_keys(person, selection),
        jobs=list(jobs),
    )

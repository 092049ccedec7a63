"""Project-level pages: home, health and metrics."""

from __future__ import annotations

import contextlib
import hmac

import redis
from django.conf import settings
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from batches.models import BatchLine
from billing.models import BooksCheck, Hold, LedgerEntry
from orweb import metrics as orweb_metrics
from orweb.health import run_checks


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat:index")
    return render(request, "home.html")


@never_cache
async def health(request: HttpRequest) -> JsonResponse:
    """200 when database, Redis and upstream answer; 503 naming what is down."""
    checks = await run_checks()
    down = [name for name, state in checks.items() if state != "ok"]
    status = 503 if down else 200
    return JsonResponse({"status": "down" if down else "ok", "down": down, "checks": checks}, status=status)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus page (orweb.metrics): not there (404) unless METRICS_TOKEN is set, and only for
    `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise), since it names models and amounts."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return HttpResponse("A metrics token is required.", status=401, headers={"WWW-Authenticate": "Bearer"})
    return HttpResponse(orweb_metrics.exposition(_database_gauges()), content_type=orweb_metrics.CONTENT_TYPE)


def _database_gauges() -> dict[str, tuple[str, float]]:
    """What only the database and the broker know, read now: the same from every process, right after a
    restart too."""
    holds = Hold.objects.filter(released_at__isnull=True).aggregate(count=Count("pk"), usd=Sum("amount"))
    backlog = LedgerEntry.objects.filter(cost_source=LedgerEntry.CostSource.ESTIMATED).count()
    lines = dict(
        BatchLine.objects.filter(status__in=[BatchLine.Status.PENDING, BatchLine.Status.RUNNING])
        .values_list("status")
        .annotate(count=Count("pk"))
    )
    books = BooksCheck.objects.order_by("-day").first()
    gauges = {
        "orweb_holds_open": ("Budget holds of calls in flight (or not yet released).", holds["count"]),
        "orweb_holds_open_usd": ("US dollars reserved by open holds.", float(holds["usd"] or 0)),
        "orweb_reconciliation_backlog": ("Ledger rows whose cost is estimated, waiting for /generation.", backlog),
        "orweb_batch_lines_queued": ("Batch lines waiting to run.", lines.get(BatchLine.Status.PENDING, 0)),
        "orweb_batch_lines_running": ("Batch lines being run now.", lines.get(BatchLine.Status.RUNNING, 0)),
        "orweb_books_drift_usd": (
            "Ledger minus OpenRouter's usage for the day last checked (billing.books).",
            float(books.drift) if books else 0.0,
        ),
    }
    with contextlib.suppress(redis.RedisError):
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1)
        try:
            for queue in ("celery", "batches"):
                gauges[f"orweb_celery_queue_depth_{queue}"] = (
                    f"Tasks waiting in the {queue} queue.",
                    broker.llen(queue),
                )
        finally:
            broker.close()
    return gauges

"""Prometheus metrics, all named `orweb_*`, served at /metrics (orweb.views.metrics) to a bearer token.

Counted where things happen, in one line each: HTTP requests by route pattern and status (`instrument`,
around the ASGI app), upstream calls as they settle (`observe_call`, from the gateway's call log line),
refusals before the call (`observe_refusal`), replies streaming now (`tracks_stream` on chat's runner,
`text/event-stream` responses for /v1). What the database knows (holds open, the reconciliation backlog) is
read when scraped, not counted, so every process answers the same and a restart forgets nothing.

Several processes: with PROMETHEUS_MULTIPROC_DIR set (before this module is imported) every web and
worker process writes its counters to files there and a scrape of any web process adds them all up
(prometheus-client's multiprocess mode). Files are named by host name and process id, not the id alone,
so that containers sharing the directory (one volume, `docker compose --scale web=3`) never write to the
same file. Without it each process counts its own: fine for `make run`'s single web process.
"""

from __future__ import annotations

import atexit
import functools
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from django.urls import Resolver404, resolve
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric

# The classic text format every Prometheus (2.x included) and Grafana Agent reads; our names need nothing newer.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def process_id() -> str:
    """This process's name in the multiprocess directory: unique across containers sharing it."""
    return f"{socket.gethostname()}-{os.getpid()}"


if MULTIPROC_DIR:
    # prometheus-client's own hook for the process identifier ("at your own risk": it must differ between
    # processes running at once, which host name and pid do); its default, the pid alone, collides between
    # containers, where every server is pid 1 or thereabouts. tests/orweb/test_metrics.py adds up two processes.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)
    # A process that exits stops counting in the "live" gauges (streams open); a killed one is forgotten
    # when the directory is emptied: docker-compose keeps it in memory (tmpfs) until the whole stack stops.
    atexit.register(lambda: multiprocess.mark_process_dead(process_id()))

# This process's metrics (in multiprocess mode the scrape reads every process's files instead).
REGISTRY = CollectorRegistry(auto_describe=True)
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_SECONDS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
CALL_SECONDS = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600)

REQUESTS = Counter(
    "orweb_http_requests",
    "HTTP requests answered, by route pattern and status.",
    ["route", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "orweb_http_request_duration_seconds",
    "Time to answer an HTTP request, to its last byte.",
    ["route"],
    buckets=SECONDS,
    registry=REGISTRY,
)
UPSTREAM_CALLS = Counter(
    "orweb_upstream_calls",
    "Upstream calls settled, by served model and outcome.",
    ["model", "status"],
    registry=REGISTRY,
)
UPSTREAM_TTFT = Histogram(
    "orweb_upstream_ttft_seconds",
    "Time to the first token of an upstream call.",
    ["model"],
    buckets=TTFT_SECONDS,
    registry=REGISTRY,
)
UPSTREAM_SECONDS = Histogram(
    "orweb_upstream_duration_seconds",
    "Time an upstream call took, start to end.",
    ["model"],
    buckets=CALL_SECONDS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "orweb_tokens", "Tokens settled, by source, served model and kind.", ["source", "model", "kind"], registry=REGISTRY
)
USD = Counter(
    "orweb_settled_usd",
    "US dollars settled in the ledger, by source and served model.",
    ["source", "model"],
    registry=REGISTRY,
)
REFUSALS = Counter(
    "orweb_refusals",
    "Calls refused before reaching upstream (policy, rate limit, budget), by code.",
    ["source", "code"],
    registry=REGISTRY,
)
ACTIVE_STREAMS = Gauge(
    "orweb_active_streams",
    "Replies streaming now: chat replies, /v1 event streams.",
    ["kind"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
ACTIVE_SOCKETS = Gauge(
    "orweb_active_sockets",
    "Chat websockets open now (signed in, within the per-person limit).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)


def observe_call(source: str, result: Any) -> None:
    """Count one settled upstream call: `result` is the gateway's CallResult (duck-typed: orweb sits below).
    Labelled by the model that served it, or the one asked for (policy has admitted it: a catalog name)."""
    model = result.served_model or result.requested_model
    UPSTREAM_CALLS.labels(model, result.status).inc()
    if result.ttft_ms is not None:
        UPSTREAM_TTFT.labels(model).observe(result.ttft_ms / 1000)
    UPSTREAM_SECONDS.labels(model).observe(result.latency_ms / 1000)
    TOKENS.labels(source, model, "prompt").inc(result.prompt_tokens)
    TOKENS.labels(source, model, "completion").inc(result.completion_tokens)
    # Prometheus counts in floats; the ledger keeps the exact Decimal, this is a rate to watch.
    USD.labels(source, model).inc(float(Decimal(result.cost)))


def observe_refusal(source: str, code: str) -> None:
    """Count one call refused before upstream (by the error's code: a fixed set, never user text)."""
    REFUSALS.labels(source, code).inc()


P = ParamSpec("P")
R = TypeVar("R")


def tracks_stream(kind: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a coroutine function so that `orweb_active_streams{kind=...}` counts it while it runs."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def tracked(*args: P.args, **kwargs: P.kwargs) -> R:
            gauge = ACTIVE_STREAMS.labels(kind)
            gauge.inc()
            try:
                return await function(*args, **kwargs)
            finally:
                gauge.dec()

        return tracked

    return decorate


def route_of(path: str) -> str:
    """The URL pattern `path` matches ("/chat/<int:pk>/"), so that label values stay few; "unmatched" else."""
    try:
        return "/" + resolve(path).route
    except Resolver404:
        return "unmatched"


Scope = dict[str, Any]
Message = dict[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def instrument(app: App) -> App:
    """`app` (ASGI, HTTP), counting each request by route and status and timing it to its last byte; a
    `text/event-stream` response counts as an active stream while it is sent."""

    async def instrumented(scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        started = time.perf_counter()
        status, streaming = 500, False

        async def sending(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = any(
                    name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", ())
                )
                if streaming:
                    ACTIVE_STREAMS.labels("api").inc()
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            if streaming:
                ACTIVE_STREAMS.labels("api").dec()
            route = route_of(scope["path"][len(scope.get("root_path", "")) :])
            REQUESTS.labels(route, str(status)).inc()
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)

    return instrumented


class _Scrape:
    """What one scrape reports: every process's counters (or this one's) and the gauges read just now."""

    def __init__(self, gauges: dict[str, tuple[str, float]]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        counted: Iterable[Metric] = (
            multiprocess.MultiProcessCollector(None, MULTIPROC_DIR).collect() if MULTIPROC_DIR else REGISTRY.collect()
        )
        yield from counted
        for name, (documentation, value) in self.gauges.items():
            yield GaugeMetricFamily(name, documentation, value=value)


def exposition(gauges: dict[str, tuple[str, float]]) -> bytes:
    """The Prometheus text page (served as CONTENT_TYPE): the counted metrics, plus `gauges`
    (name -> (help, value)) read at scrape time."""
    return generate_latest(_Scrape(gauges))

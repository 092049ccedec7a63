"""What the metered /v1 path adds: the official `openai` SDK streaming through orweb vs. straight to the
simulator, in one run.

Starts a simulator and one daphne process serving orweb on a fresh database (`orweb_bench_api`), creates
a user with a budget, generous rate limits and a personal key, then for concurrency 1, 16 and 64 runs the
same streams both ways and reports time to first token (request sent -> first content delta, as the SDK
sees it), p50/p99, the added TTFT (orweb percentile - direct percentile) and the throughput ratio
(streams per second through orweb / direct). Finally it times the metering itself (budget hold + settle,
the billing functions called directly against PostgreSQL), p50/p99 per request.

Goals (issue 3): added TTFT p50 <= 5 ms at concurrency 1; throughput at 16 >= 0.8x direct; metering
p50 <= 2 ms.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/gateway_overhead.py
        [--tokens 60] [--tps 300] [--ttft 0.05] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import openai
from harness import free_port, percentile, wait_for, with_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "orweb_bench_api"
MODEL = "openai/gpt-4o-mini"
SIM_KEY = "sk-or-bench-gateway"
CONCURRENCY = (1, 16, 64)


@dataclass
class Pass:
    """One batch of streams at one concurrency, one way."""

    ttfts: list[float]
    seconds: float
    streams: int

    @property
    def throughput(self) -> float:
        return self.streams / self.seconds


async def one_stream(client: openai.AsyncOpenAI, prompt: str, max_tokens: int) -> float:
    started = time.perf_counter()
    ttft = None
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, stream=True
    )
    async for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - started
    if ttft is None:
        raise RuntimeError("a stream ended without content")
    return ttft


async def run_pass(client: openai.AsyncOpenAI, concurrency: int, streams: int, prompt: str, max_tokens: int) -> Pass:
    queue = list(range(streams))
    ttfts: list[float] = []

    async def worker() -> None:
        while queue:
            queue.pop()
            ttfts.append(await one_stream(client, prompt, max_tokens))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Pass(ttfts=ttfts, seconds=time.perf_counter() - started, streams=streams)


def setup_database(env: dict[str, str], sim_url: str) -> str:
    """A fresh database: migrated, the simulator's catalog, a user with a budget and a key. The key."""
    import psycopg

    admin_url = with_database(env["DATABASE_URL"], "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from billing.budgets import set_budget
    from billing.models import RateLimit
    from catalog.sync import sync_from_openrouter
    from gateway.keys import create_key

    sync_from_openrouter()
    user = get_user_model().objects.create_user("bench-api")
    set_budget(user=user, amount=Decimal("100000"))
    RateLimit.objects.create(
        user=user, requests_per_minute=1_000_000, tokens_per_minute=1_000_000_000, concurrent_streams=10_000
    )
    return create_key(user, "bench")[1]


def time_metering(iterations: int) -> list[float]:
    """Milliseconds for place_hold + settle per call (one user budget), against the real database."""
    from django.contrib.auth import get_user_model

    from billing.holds import place_hold
    from billing.ledger import Outcome, settle

    user = get_user_model().objects.get(username="bench-api")
    timings = []
    for _ in range(iterations):
        started = time.perf_counter()
        hold = place_hold(user, Decimal("0.0005"))
        settle(
            Outcome(
                user_id=user.pk,
                source="api",
                requested_model=MODEL,
                served_model=MODEL,
                status="ok",
                cost=Decimal("0.0001"),
                cost_source="reported",
                generation_id=f"bench-{uuid.uuid4()}",
                prompt_tokens=10,
                completion_tokens=50,
            ),
            hold_id=hold.pk if hold else None,
        )
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def measure(
    direct: openai.AsyncOpenAI, orweb: openai.AsyncOpenAI, args: argparse.Namespace
) -> list[tuple[int, Pass, Pass]]:
    prompt = f"Tell me something. [[sim tokens={args.tokens}]]"
    await run_pass(direct, 4, 8, prompt, args.tokens + 10)
    await run_pass(orweb, 4, 8, prompt, args.tokens + 10)
    results = []
    for concurrency in CONCURRENCY:
        streams = max(args.rounds, concurrency * 3)
        d = await run_pass(direct, concurrency, streams, prompt, args.tokens + 10)
        o = await run_pass(orweb, concurrency, streams, prompt, args.tokens + 10)
        results.append((concurrency, d, o))
    return results


def report(results: list[tuple[int, Pass, Pass]], metering: list[float]) -> None:
    print(
        f"\n{'conc':>4} {'way':>7} {'ttft p50':>9} {'ttft p99':>9} {'streams/s':>10}"
        f" {'added p50':>10} {'added p99':>10} {'ratio':>6}"
    )
    for concurrency, d, o in results:
        dp50, dp99 = percentile(d.ttfts, 50) * 1000, percentile(d.ttfts, 99) * 1000
        op50, op99 = percentile(o.ttfts, 50) * 1000, percentile(o.ttfts, 99) * 1000
        print(f"{concurrency:>4} {'direct':>7} {dp50:>8.1f}ms {dp99:>8.1f}ms {d.throughput:>10.1f}")
        print(
            f"{concurrency:>4} {'orweb':>7} {op50:>8.1f}ms {op99:>8.1f}ms {o.throughput:>10.1f}"
            f" {op50 - dp50:>8.1f}ms {op99 - dp99:>8.1f}ms {o.throughput / d.throughput:>6.2f}"
        )
    print(
        f"\nmetering (hold + settle): p50 {statistics.median(metering):.2f} ms, "
        f"p99 {percentile(metering, 99):.2f} ms over {len(metering)} calls"
    )
    by_conc = {c: (d, o) for c, d, o in results}
    d1, o1 = by_conc[1]
    d16, o16 = by_conc[16]
    added = (percentile(o1.ttfts, 50) - percentile(d1.ttfts, 50)) * 1000
    print("\ngoals:")
    print(f"  added TTFT p50 at 1 <= 5 ms: {added:.1f} ms {'OK' if added <= 5 else 'MISSED'}")
    ratio = o16.throughput / d16.throughput
    print(f"  throughput at 16 >= 0.8x direct: {ratio:.2f}x {'OK' if ratio >= 0.8 else 'MISSED'}")
    p50 = statistics.median(metering)
    print(f"  metering p50 <= 2 ms: {p50:.2f} ms {'OK' if p50 <= 2 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=60, help="tokens per reply")
    parser.add_argument("--tps", type=float, default=300, help="simulator tokens per second")
    parser.add_argument("--ttft", type=float, default=0.05, help="simulator time to first token (s)")
    parser.add_argument("--rounds", type=int, default=30, help="streams per pass (at least 3x concurrency)")
    parser.add_argument("--metering", type=int, default=300, help="hold + settle iterations")
    parser.add_argument("--app-log", default="/tmp/orweb-bench-api.log", help="daphne's stderr goes here")
    args = parser.parse_args()

    base_db = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orweb")
    sim_port, app_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}/api/v1"
    env = {
        **os.environ,
        "DATABASE_URL": with_database(base_db, DB_NAME),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret"),
        "OPENROUTER_BASE_URL": sim_url,
        "OPENROUTER_API_KEY": SIM_KEY,
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
    }
    procs: list[subprocess.Popen] = []
    app_log = open(args.app_log, "w")  # noqa: SIM115 (closed in finally, after the processes)
    try:
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openrouter.simulator",
                "--port",
                str(sim_port),
                "--ttft",
                str(args.ttft),
                "--tps",
                str(args.tps),
                "--generation-delay",
                "0",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(sim)
        wait_for(f"{sim_url}/models", sim)
        secret = setup_database(env, sim_url)
        app = subprocess.Popen(
            [sys.executable, "-m", "orweb.serve", "-b", "127.0.0.1", "-p", str(app_port), "orweb.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=app_log,
        )
        procs.append(app)
        wait_for(f"http://127.0.0.1:{app_port}/health", app)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        direct = openai.AsyncOpenAI(
            base_url=sim_url, api_key=SIM_KEY, max_retries=0, http_client=openai.DefaultAsyncHttpxClient(limits=limits)
        )
        orweb = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{app_port}/v1",
            api_key=secret,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(limits=limits),
        )
        print(f"simulator: ttft {args.ttft * 1000:.0f} ms, {args.tps:.0f} tok/s, {args.tokens} tokens a reply")
        pool = "off" if env.get("DB_POOL", "1").lower() in ("0", "false", "off") else "on"
        print(f"orweb under daphne (DB pool {pool}); load average {os.getloadavg()[0]:.2f} at start")
        results = asyncio.run(measure(direct, orweb, args))
        metering = time_metering(args.metering)
        report(results, metering)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        app_log.close()


if __name__ == "__main__":
    main()

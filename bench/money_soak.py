"""Money that survives faults (issue 9): mixed calls through a real stack, with a kill -9 of the web
process and of Redis on the way, then the ledger against what the simulator billed, by generation id.

The stack: a fast simulator (20 ms to the first token, 1,000 tok/s), a Redis of the bench's own (so it can
be killed), `python -m orweb.serve`, a Celery worker with beat, a fresh database (`orweb_bench_soak` on
DATABASE_URL's server) and journal directory. N calls, `--concurrency` at a time, through /v1 (streamed and
not) and chat (websockets): plain, cancelled mid-stream (a non-streamed one abandoned by its client), a
mid-stream error, a dropped connection, a fallback from a failing model, no usage, a 503 retried. A client
takes a connection error as that call's failure. At 35% of the calls the web process is killed -9 and
started again at once (same port and journal directory); at 65% Redis, started again 2 s later.

Then it waits (up to `--recovery` s) for every billed generation to be in the ledger at its billed cost,
nothing estimated, no hold open, and prints billed vs ledger (count, sum; missing, extra, mismatched ids),
open holds, each fault's time to recovery (until the ledger held, at cost, what was billed up to 3 s after
it) and the metering overhead (hold + settle p50 in-process, gateway_overhead's `time_metering`) against
its 2 ms bar. Exits 1 if the ledger and the bill differ or a hold is left open.

    python -m orweb.devstack bench money_soak.py        # 10,000 calls; or, on a running PostgreSQL:
    DATABASE_URL=... .venv/bin/python bench/money_soak.py [--requests 300] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import websockets
from gateway_overhead import time_metering
from harness import (
    RedisServer,
    Service,
    free_port,
    fresh_database,
    percentile,
    session_cookie,
    wait_for,
    with_database,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "orweb_bench_soak"
SIM_KEY = "sk-or-bench-soak"
USERNAME = "bench-api"  # the user gateway_overhead.time_metering times hold + settle with
MODEL = "openai/gpt-4o-mini"
FAILING = "mistralai/mistral-small-3.2-24b-instruct"  # the simulator answers 503 for it: fallbacks move on
KINDS = {"plain": 34, "cancel": 12, "error": 10, "drop": 10, "fallback": 14, "no_usage": 14, "retried": 6}
WAYS = {"chat": 45, "v1-stream": 35, "v1": 20}
SNAPSHOT_AFTER = 3.0
METERING_BAR_MS = 2.0


@dataclass
class Call:
    way: str
    kind: str
    prompt: str
    model: str
    fallbacks: list[str] = field(default_factory=list)
    conversation: int = 0


def plan(n: int, seed: int) -> list[Call]:
    """The same mix for the same seed: each call's way, kind and simulator directives."""
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        way = rng.choices(list(WAYS), weights=list(WAYS.values()))[0]
        kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
        directive = {
            "plain": f"tokens={rng.randint(20, 60)}",
            "cancel": "tokens=150 tps=300",
            "error": f"tokens=60 error_after={rng.randint(0, 30)}",
            "drop": f"tokens=60 drop_after={rng.randint(1, 30)}",
            "fallback": f"tokens={rng.randint(20, 60)}",
            "no_usage": f"tokens={rng.randint(20, 60)} no_usage=1",
            "retried": f"tokens={rng.randint(20, 60)} status=503 fail_first=1 key=soak-{seed}-{i}",
        }[kind]
        fallback = kind == "fallback"
        calls.append(
            Call(way, kind, f"Soak call {i}. [[sim {directive}]]", FAILING if fallback else MODEL,
                 [MODEL] if fallback else [])
        )  # fmt: skip
    return calls


async def v1_call(client: httpx.AsyncClient, secret: str, call: Call) -> str:
    """One /v1 call; what the client saw: ok, cancelled, error, cut (ended without [DONE]), conn, timeout."""
    body = {"model": call.model, "messages": [{"role": "user", "content": call.prompt}], "max_tokens": 400}
    if call.fallbacks:
        body["models"] = [call.model, *call.fallbacks]
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        if call.way == "v1":
            timeout = 0.25 if call.kind == "cancel" else 20.0
            response = await client.post("/v1/chat/completions", json=body, headers=headers, timeout=timeout)
            return "ok" if response.status_code == 200 and "error" not in response.json() else "error"
        body["stream"] = True
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                return "error"
            pieces, errored = 0, False
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    return "error" if errored else "ok"
                if not line.startswith("data: "):
                    continue
                chunk = json.loads(line[6:])
                errored |= "error" in chunk
                choices = chunk.get("choices") or [{}]
                pieces += bool((choices[0].get("delta") or {}).get("content"))
                if call.kind == "cancel" and pieces >= 2:
                    return "cancelled"
            return "error" if errored else "cut"
    except httpx.TimeoutException:
        return "cancelled" if call.kind == "cancel" else "timeout"
    except (httpx.HTTPError, ValueError):
        return "conn"


CHAT_ENDINGS = {"complete": "ok", "stopped": "cancelled", "error": "error", "incomplete": "cut"}


async def chat_call(ws_url: str, headers: dict[str, str], call: Call) -> str:
    """One chat reply through its own socket; a cancel sends "stop" after the first delta."""
    try:
        async with asyncio.timeout(20):
            url = f"{ws_url}/ws/chat/{call.conversation}/"
            async with websockets.connect(url, additional_headers=headers, max_size=None, open_timeout=5) as ws:
                await ws.send(json.dumps({"action": "send", "content": call.prompt}))
                reply, stopped = None, False
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] == "message" and frame["message"]["role"] == "assistant":
                        reply = frame["message"]["id"]
                    elif frame["type"] == "delta" and call.kind == "cancel" and not stopped:
                        stopped = True
                        await ws.send(json.dumps({"action": "stop", "message_id": frame["message_id"]}))
                    elif frame["type"] == "done" and frame["message_id"] == reply:
                        return CHAT_ENDINGS.get(frame["status"], frame["status"])
                    elif frame["type"] == "error" and frame.get("code") != "not_running":
                        return "error"
                return "conn"
    except TimeoutError:
        return "timeout"
    except (OSError, websockets.WebSocketException):
        return "conn"


class Ledger:
    """Reads of the bench database, each on its own connection (so any thread may read)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, sql: str) -> int:
        return self.query(sql)[0][0]

    def rows(self, ids: list[str] | None = None) -> dict[str, tuple[Decimal, str]]:
        """generation id -> (cost, cost source), of `ids` or of every row that has one."""
        sql = "SELECT generation_id, cost, cost_source FROM billing_ledgerentry WHERE generation_id IS NOT NULL"
        found = self.query(sql) if ids is None else self.query(sql + " AND generation_id = ANY(%s)", [ids])
        return {gen: (cost, source) for gen, cost, source in found}


def billed(sim: str) -> tuple[dict[str, dict], int]:
    """What the simulator billed (generation id -> its record, cost as a Decimal) and how many generations
    are still running."""
    data = httpx.get(f"{sim}/_sim/billed", timeout=30).json()
    return {row["id"]: {**row, "cost": Decimal(row["cost"])} for row in data["data"]}, data["in_flight"]


def behind(bill: dict[str, dict], ledger: dict[str, tuple[Decimal, str]]) -> list[str]:
    """The billed generations the ledger doesn't hold yet at their billed cost (estimated ones don't count)."""
    return [
        g for g, row in bill.items() if g not in ledger or ledger[g][1] == "estimated" or ledger[g][0] != row["cost"]
    ]


@dataclass
class Fault:
    name: str
    at: float
    note: str = ""
    pending: dict[str, dict] | None = None
    billed: int = 0
    recovered: float | None = None


class Recovery(threading.Thread):
    """Watches each fault until the ledger holds, at the billed cost, what was billed up to 3 s after it; and
    starts the Celery worker again if it exits, as docker-compose's `restart: unless-stopped` would."""

    def __init__(self, sim: str, ledger: Ledger, worker: Service) -> None:
        super().__init__(daemon=True)
        self.sim, self.ledger, self.worker = sim, ledger, worker
        self.faults: list[Fault] = []
        self.worker_exits: list[str] = []
        self.stopping = threading.Event()

    def fault(self, name: str) -> Fault:
        self.faults.append(Fault(name, time.monotonic()))
        return self.faults[-1]

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            if self.worker.process is not None and self.worker.process.poll() is not None:
                self.worker_exits.append(f"exited with {self.worker.process.returncode}")
                self.worker.start()
            for fault in self.faults:
                try:
                    if fault.pending is None and time.monotonic() >= fault.at + SNAPSHOT_AFTER:
                        fault.pending, _ = billed(self.sim)
                        fault.billed = len(fault.pending)
                    if fault.pending is not None and fault.recovered is None:
                        left = behind(fault.pending, self.ledger.rows(list(fault.pending)))
                        fault.pending = {gen: fault.pending[gen] for gen in left}
                        if not left:
                            fault.recovered = time.monotonic() - fault.at
                except (httpx.HTTPError, psycopg.Error):
                    continue


async def inject_faults(progress: Counter, total: int, stack: Stack, recovery: Recovery) -> None:
    """kill -9 the web process at 35% of the calls (started again at once), Redis at 65% (again after 2 s)."""
    while progress["done"] < total * 0.35:
        await asyncio.sleep(0.1)
    fault = recovery.fault("web kill -9")
    stack.web.kill()
    await asyncio.to_thread(wait_for, f"{stack.base}/health", stack.web.start())
    fault.note = f"serving again after {time.monotonic() - fault.at:.1f} s"
    while progress["done"] < total * 0.65:
        await asyncio.sleep(0.1)
    fault = recovery.fault("Redis kill -9")
    stack.redis.kill()
    await asyncio.sleep(2)
    await asyncio.to_thread(stack.redis.start)
    fault.note = f"down {time.monotonic() - fault.at:.1f} s"


async def load(args: argparse.Namespace, calls: list[Call], stack: Stack, recovery: Recovery) -> dict:
    """Run every call, `args.concurrency` at a time, with the faults injected on the way."""
    results: dict[tuple[str, str], Counter] = defaultdict(Counter)
    progress: Counter = Counter()
    queue = iter(calls)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    timeout = httpx.Timeout(20.0, connect=5.0)
    async with httpx.AsyncClient(base_url=stack.base, limits=limits, timeout=timeout) as client:

        async def worker() -> None:
            for call in queue:
                if call.way == "chat":
                    outcome = await chat_call(stack.ws_url, stack.ws_headers, call)
                else:
                    outcome = await v1_call(client, stack.secret, call)
                results[(call.way, call.kind)][outcome] += 1
                progress["done"] += 1
                if outcome == "conn":
                    await asyncio.sleep(0.2)  # the server is away: don't burn through the plan meanwhile

        faults = asyncio.ensure_future(inject_faults(progress, len(calls), stack, recovery))
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        await faults
    return results


@dataclass
class Stack:
    base: str
    ws_url: str
    ws_headers: dict[str, str]
    secret: str
    web: Service
    redis: RedisServer


def setup_database(env: dict[str, str], calls: list[Call]) -> tuple[str, str]:
    """A fresh database: the simulator's catalog, a user with a budget, generous limits, a key, a session,
    and a conversation for each chat call. (The key, the session cookie.)"""
    fresh_database(env, DB_NAME, ROOT)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from billing.budgets import set_budget
    from billing.models import RateLimit
    from catalog.sync import sync_from_openrouter
    from chat.conversations import create_conversation
    from gateway.keys import create_key

    sync_from_openrouter()
    user = get_user_model().objects.create_user(USERNAME)
    set_budget(user=user, amount=Decimal("1000000"))
    RateLimit.objects.create(
        user=user, requests_per_minute=1_000_000, tokens_per_minute=1_000_000_000, concurrent_streams=10_000
    )
    for call in calls:
        if call.way == "chat":
            conversation = create_conversation(user, model=call.model, fallback_models=call.fallbacks, max_tokens=400)
            call.conversation = conversation.pk
    secret, cookie = create_key(user, "soak")[1], session_cookie(user)
    connections.close_all()
    return secret, cookie


ESTIMATED = "SELECT count(*) FROM billing_ledgerentry WHERE cost_source = 'estimated'"
OPEN_HOLDS = "SELECT count(*) FROM billing_hold WHERE released_at IS NULL"


def wait_for_books(sim: str, ledger: Ledger, limit: float) -> float | None:
    """Seconds until the ledger holds the bill with nothing estimated or held; None if `limit` passed first."""
    started = shown = time.monotonic()
    while time.monotonic() - started < limit:
        bill, in_flight = billed(sim)
        missing, estimated, held = behind(bill, ledger.rows()), ledger.count(ESTIMATED), ledger.count(OPEN_HOLDS)
        if not in_flight and not missing and not estimated and not held:
            return time.monotonic() - started
        if time.monotonic() - shown > 15:
            shown = time.monotonic()
            print(f"  waiting: {len(missing)} billed not in the ledger at cost, {estimated} estimated, {held} held")
        time.sleep(1)
    return None


def report_money(sim: str, ledger: Ledger) -> bool:
    """Print billed vs ledger; True when they agree by generation id, cost and sum, and no hold is open."""
    bill, in_flight = billed(sim)
    rows = ledger.rows()
    missing, extra = sorted(set(bill) - set(rows)), sorted(set(rows) - set(bill))
    wrong = sorted(gen for gen in set(bill) & set(rows) if rows[gen][0] != bill[gen]["cost"])
    billed_sum = sum((row["cost"] for row in bill.values()), Decimal(0))
    [(total, without_id, without_id_cost)] = ledger.query(
        "SELECT coalesce(sum(cost), 0), count(*) FILTER (WHERE generation_id IS NULL),"
        " coalesce(sum(cost) FILTER (WHERE generation_id IS NULL), 0) FROM billing_ledgerentry"
    )
    held = ledger.count(OPEN_HOLDS)
    print("\n== money")
    print(f"  billed (simulator): {len(bill):>6} generations  ${billed_sum}  ({in_flight} still running)")
    print(f"  ledger:             {len(rows):>6} generations  ${total}")
    print(f"  ledger rows without a generation id: {without_id} (${without_id_cost})")
    for name, ids in (("missing", missing), ("extra", extra), ("cost mismatch", wrong)):
        print(f"  {name}: {len(ids)}")
        for gen in ids[:20]:
            row = bill.get(gen, {})
            what = " ".join(
                f"{k}={row[k]}" for k in ("model", "streamed", "cancelled", "tokens_completion") if k in row
            )
            print(f"    {gen}: billed {row.get('cost', '-')}, ledger {rows.get(gen, ('-',))[0]}  {what}")
    print(f"  rows still estimated: {ledger.count(ESTIMATED)}; holds left open: {held}")
    for hold, amount, created in ledger.query(
        "SELECT id, amount, created FROM billing_hold WHERE released_at IS NULL ORDER BY created LIMIT 20"
    ):
        print(f"    hold {hold}: ${amount}, placed {created:%H:%M:%S.%f}")
    replies = ledger.query("SELECT status, count(*) FROM chat_message WHERE role = 'assistant' GROUP BY 1 ORDER BY 1")
    print("  chat replies: " + ", ".join(f"{status} {count}" for status, count in replies))
    return not missing and not extra and not wrong and total == billed_sum and held == 0


def report_load(results: dict, seconds: float, n: int) -> None:
    outcomes = ["ok", "cancelled", "error", "cut", "conn", "timeout"]
    print(f"\n== load: {n} calls in {seconds:.0f} s ({n / seconds:.0f}/s)")
    print(f"  {'way':<10} {'kind':<9}" + "".join(f"{o:>10}" for o in outcomes))
    for (way, kind), counts in sorted(results.items()):
        print(f"  {way:<10} {kind:<9}" + "".join(f"{counts.get(o, 0):>10}" for o in outcomes))


def services(run: Path, sim_port: int, web_port: int, redis: RedisServer) -> tuple[dict[str, str], list[Service]]:
    """The environment of the stack's processes, and the simulator, web process and Celery worker (with beat)."""
    database = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orweb")
    env = {
        **os.environ,
        "DATABASE_URL": with_database(database, DB_NAME),
        "REDIS_URL": redis.url,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-soak"),
        "OPENROUTER_BASE_URL": f"http://127.0.0.1:{sim_port}/api/v1",
        "OPENROUTER_API_KEY": SIM_KEY,
        "ORWEB_JOURNAL_DIR": str(run / "journal"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "orweb.settings",
    }
    py = sys.executable
    simulator = [py, "-m", "openrouter.simulator", "--port", str(sim_port), "--keys", SIM_KEY, "--ttft", "0.02"]
    simulator += ["--tps", "1000", "--tokens-per-chunk", "3"]
    web = [py, "-m", "orweb.serve", "-b", "127.0.0.1", "-p", str(web_port), "orweb.asgi:application"]
    worker = [py, "-m", "celery", "-A", "orweb", "worker", "-B", "-l", "warning", "-c", "2"]
    worker += ["-s", str(run / "celerybeat-schedule")]
    return env, [Service(args, env, ROOT, run / f"{name}.log") for name, args in
                 (("simulator", simulator), ("web", web), ("worker", worker))]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--recovery", type=float, default=300, help="seconds to wait for the ledger after the load")
    parser.add_argument("--metering", type=int, default=300, help="hold + settle calls timed at the end")
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()

    run = Path(tempfile.mkdtemp(prefix="orweb-soak-"))
    sim_port, web_port = free_port(), free_port()
    sim, base = f"http://127.0.0.1:{sim_port}", f"127.0.0.1:{web_port}"
    redis = RedisServer(run, ROOT)
    env, (simulator, web, worker) = services(run, sim_port, web_port, redis)
    everything = [redis, simulator, web, worker]
    print(f"logs and journals in {run}; load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    code = 2
    try:
        redis.start()
        wait_for(f"{sim}/api/v1/models", simulator.start())
        httpx.post(f"{sim}/_sim/faults", json={"model": FAILING, "spec": "status=503"}).raise_for_status()
        calls = plan(args.requests, args.seed)
        secret, cookie = setup_database(env, calls)
        wait_for(f"http://{base}/health", web.start())
        worker.start()
        headers = {"Cookie": cookie, "Origin": f"http://{base}"}
        stack = Stack(f"http://{base}", f"ws://{base}", headers, secret, web, redis)
        ledger = Ledger(env["DATABASE_URL"])
        recovery = Recovery(sim, ledger, worker)
        recovery.start()
        started = time.monotonic()
        results = asyncio.run(load(args, calls, stack, recovery))
        report_load(results, time.monotonic() - started, len(calls))
        print(f"\n== recovery (waiting up to {args.recovery:.0f} s for the ledger)")
        after = wait_for_books(sim, ledger, args.recovery)
        recovery.stopping.set()
        recovery.join()
        report_recovery(after, recovery.faults, started)
        if recovery.worker_exits:
            print(f"  the Celery worker {', '.join(recovery.worker_exits)} (started again; see {worker.log})")
        agree = report_money(sim, ledger)
        for service in reversed(everything):
            service.stop()  # the metering is timed against PostgreSQL alone
        report_metering(args.metering)
        print(f"\n{'OK: the ledger matches the bill' if agree else 'FAILED: the ledger and the bill differ'}")
        code = 0 if agree else 1
        return code
    finally:
        for service in reversed(everything):
            service.stop()
        if code == 0:
            shutil.rmtree(run, ignore_errors=True)
        else:
            print(f"logs and journals kept in {run}")


def report_recovery(after: float | None, faults: list[Fault], started: float) -> None:
    print(f"  the ledger matched the bill {after:.1f} s after the load" if after is not None else "  NOT in time")
    for fault in faults:
        took = f"{fault.recovered:.1f} s" if fault.recovered is not None else "never"
        print(
            f"  {fault.name} at {fault.at - started:.0f} s ({fault.note}): the ledger held the "
            f"{fault.billed} generations billed by {SNAPSHOT_AFTER:.0f} s after it, at cost, in {took}"
        )
    times = [f.recovered for f in faults]
    print(f"  max time to recovery: {max(times):.1f} s" if times and None not in times else "  max: never")


def report_metering(iterations: int) -> None:
    metering = time_metering(iterations)
    p50 = statistics.median(metering)
    print(
        f"\n== metering (hold + settle, in-process, {len(metering)} calls, load average {os.getloadavg()[0]:.2f}):"
        f" p50 {p50:.2f} ms, p99 {percentile(metering, 99):.2f} ms; bar p50 <= {METERING_BAR_MS:.0f} ms:"
        f" {'OK' if p50 <= METERING_BAR_MS else 'MISSED'}"
    )


if __name__ == "__main__":
    sys.exit(main())

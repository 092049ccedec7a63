"""What the chat relay adds: the app's websocket stream measured against the simulator's own SSE.

One run starts a simulator and one daphne process (fresh database `orweb_bench_relay`); this process is
the client (it never shares an event loop with either). It measures
  1. one stream at a time (50 tokens at 50 tok/s): time to first token, directly and through the relay;
  2. N concurrent streams of 50 tok/s, 250 tokens each (sockets opened first, then all sends at once; 5 s
     replies, so all N really stream at the same time, past the burst of sends): added TTFT p50/p99,
     gaps between frames, lost/changed/reordered text;
  3. one 3,000 tok/s stream of 3,000 tokens: the relay's total time against the simulator's.
"Added" = relay percentile − direct percentile. Every reply is checked against the text the simulator
sent when read directly, and that against the echoed prompt (so a reply cut by max_tokens is caught);
relay seqs must be 1..n. The load average and the CPU seconds daphne and the simulator used are printed
with each phase: on a shared machine the numbers mean little without them.

    .venv/bin/python bench/relay.py [--streams 200] [--single 20] [--phases single,many,fast]
Needs PostgreSQL and Redis (DATABASE_URL's server, REDIS_URL; defaults: the local ones, Redis database 14,
whose chat keys the run clears).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets
from harness import free_port, percentile, wait_for, with_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "orweb_bench_relay"
MODEL = "openai/gpt-4o-mini"
KEY = "sk-or-bench-relay"
MAX_TOKENS = 16_000


def words(n: int, tag: str) -> str:
    """n words of at most four characters (`tag` + hex), each one token for the simulator."""
    assert n <= 16**3 and len(tag) == 1
    return " ".join(f"{tag}{i:x}" for i in range(n))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent not idle so far (Linux)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Machine:
    """Load average, the CPU each server process and this client used during a phase, and the whole
    machine's: on a shared machine the numbers mean little without them."""

    def __init__(self, procs: dict[str, subprocess.Popen]) -> None:
        self.procs = procs
        self.start()

    def _cpu_now(self) -> dict[str, float]:
        return {
            **{name: cpu_seconds(p.pid) for name, p in self.procs.items()},
            "client": cpu_seconds(os.getpid()),
            "machine": machine_busy_seconds(),
        }

    def start(self) -> None:
        self._wall = time.monotonic()
        self._cpu = self._cpu_now()

    def report(self) -> str:
        wall = time.monotonic() - self._wall
        spent = {name: cpu - self._cpu[name] for name, cpu in self._cpu_now().items()}
        used = ", ".join(f"{name} {cpu:.1f} s CPU ({cpu / wall:.0%})" for name, cpu in spent.items())
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        return f"  machine: load {load} ({os.cpu_count()} cores); {wall:.1f} s wall; {used}"


@dataclass
class Run:
    ttft: float = 0.0
    total: float = 0.0
    gaps: list[float] = field(default_factory=list)
    text: str = ""
    ordered: bool = True
    error: str = ""
    seqs: list[int] = field(default_factory=list)


async def direct(client: httpx.AsyncClient, base: str, prompt: str) -> Run:
    """Read the simulator's SSE like the gateway does; time from request to first content, and gaps."""
    run = Run()
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "max_tokens": MAX_TOKENS,
    }
    started = time.perf_counter()
    last = None
    async with client.stream(
        "POST", f"{base}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            piece = (choices[0].get("delta") or {}).get("content") if choices else None
            if not piece:
                continue
            now = time.perf_counter()
            if last is None:
                run.ttft = now - started
            else:
                run.gaps.append(now - last)
            last = now
            run.text += piece
    run.total = time.perf_counter() - started
    return run


class Tab:
    """One websocket on one conversation, opened before the measurement starts."""

    def __init__(self, ws_url: str, cookie: str, origin: str, conversation_id: int) -> None:
        self.url = f"{ws_url}/ws/chat/{conversation_id}/"
        self.headers = {"Cookie": cookie, "Origin": origin}
        self.ws: websockets.ClientConnection | None = None

    async def open(self) -> Tab:
        self.ws = await websockets.connect(self.url, max_size=None, additional_headers=self.headers)
        return self

    async def ask(self, prompt: str) -> Run:
        """Send; time from send to first delta, gaps, and the text by seq."""
        assert self.ws is not None
        run = Run()
        started = time.perf_counter()
        await self.ws.send(json.dumps({"action": "send", "content": prompt}))
        last, expected = None, 1
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame["type"] == "delta":
                now = time.perf_counter()
                if last is None:
                    run.ttft = now - started
                else:
                    run.gaps.append(now - last)
                last = now
                run.ordered &= frame["seq"] == expected
                run.seqs.append(frame["seq"])
                expected = frame["seq"] + 1
                run.text += frame["text"]
            elif frame["type"] == "done":
                run.total = time.perf_counter() - started
                if frame["status"] != "complete":
                    run.error = f"{frame['status']}: {frame.get('error')}"
                return run
            elif frame["type"] == "error":
                run.error = frame["message"]
                return run
        raise RuntimeError("socket closed before done")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def clear_redis(url: str) -> None:
    """Forget the delta lists, leases and counters of earlier runs: the fresh database reuses message ids."""
    import redis

    client = redis.Redis.from_url(url)
    for pattern in ("chat:*", "orweb:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    client.close()


def setup_database(env: dict[str, str]) -> tuple[str, list[int]]:
    """A fresh database with the simulator's catalog, one user, a session and conversations."""
    import psycopg

    clear_redis(env["REDIS_URL"])

    admin_url = with_database(env["DATABASE_URL"], "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    # Channel-layer groups are Redis pub/sub channels named from these ids, and pub/sub ignores the
    # database number: ids far from those of test runs sharing the Redis server keep them apart.
    start = random.randrange(10**9, 2 * 10**9)
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        for table in ("chat_conversation", "chat_message"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {start})")
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    from billing.models import RateLimit
    from chat.conversations import create_conversation
    from tests.helpers.metering import load_catalog

    load_catalog()
    user = User.objects.create_user("bench", password="bench-relay-password")
    RateLimit.objects.create(
        user=user, requests_per_minute=1_000_000, tokens_per_minute=1_000_000_000, concurrent_streams=10_000
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    ids = [create_conversation(user, model=MODEL, max_tokens=MAX_TOKENS, title="bench").pk for _ in range(600)]
    from django.db import connections

    connections.close_all()
    return f"sessionid={session.session_key}", ids


def summary(name: str, direct_runs: list[Run], relay_runs: list[Run]) -> dict[str, float]:
    d_ttft = [r.ttft * 1000 for r in direct_runs]
    r_ttft = [r.ttft * 1000 for r in relay_runs]
    d_gaps = [g * 1000 for r in direct_runs for g in r.gaps]
    r_gaps = [g * 1000 for r in relay_runs for g in r.gaps]
    result = {
        "ttft_direct_p50": percentile(d_ttft, 50),
        "ttft_relay_p50": percentile(r_ttft, 50),
        "ttft_direct_p99": percentile(d_ttft, 99),
        "ttft_relay_p99": percentile(r_ttft, 99),
        "added_ttft_p50": percentile(r_ttft, 50) - percentile(d_ttft, 50),
        "added_ttft_p99": percentile(r_ttft, 99) - percentile(d_ttft, 99),
    }
    if d_gaps and r_gaps:
        result |= {
            "gap_direct_p50": percentile(d_gaps, 50),
            "gap_relay_p50": percentile(r_gaps, 50),
            "gap_direct_p99": percentile(d_gaps, 99),
            "gap_relay_p99": percentile(r_gaps, 99),
            "added_gap_p99": percentile(r_gaps, 99) - percentile(d_gaps, 99),
            "gap_relay_max": max(r_gaps),
        }
    print(f"\n== {name}")
    for key, value in result.items():
        print(f"  {key:18} {value:8.1f} ms")
    return result


def check_texts(expected: str, direct_runs: list[Run], relay_runs: list[Run]) -> tuple[int, int]:
    """(relay replies whose text differs from what the simulator sent, relay replies with seqs out of order).

    Raises if the simulator itself didn't send the whole echo: then the bench, not the relay, is wrong."""
    cut = sum(r.text != expected for r in direct_runs)
    if cut:
        raise RuntimeError(f"{cut} direct replies differ from the echoed prompt (cut by max_tokens?)")
    failed = [r.error for r in relay_runs if r.error]
    if failed:
        print(f"  relay replies that failed: {len(failed)}, e.g. {failed[0]!r}")
    for run in relay_runs:
        if run.text != expected or not run.ordered:
            at = next((i for i, (a, b) in enumerate(zip(run.text, expected, strict=False)) if a != b), len(run.text))
            print(f"  e.g. a reply with seqs {run.seqs} differs from char {at}: {run.text[at - 10 : at + 20]!r}")
            break
    return sum(r.text != expected for r in relay_runs), sum(not r.ordered for r in relay_runs)


async def open_tabs(ws_url: str, cookie: str, origin: str, ids: list[int]) -> list[Tab]:
    tabs = [Tab(ws_url, cookie, origin, i) for i in ids]
    for start in range(0, len(tabs), 50):
        await asyncio.gather(*(t.open() for t in tabs[start : start + 50]))
    return tabs


async def measure(
    args: argparse.Namespace,
    machine: Machine,
    sim_base: str,
    ws_url: str,
    origin: str,
    cookie: str,
    ids: list[int],
) -> None:
    conv = iter(ids)
    goals = []
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        slow = words(50, "s")
        prompt = f"echo: {slow}[[sim tps=50 ttft=0.05]]"
        long = words(args.tokens, "l")
        long_prompt = f"echo: {long}[[sim tps=50 ttft=0.05]]"
        # Not measured: the first call of a process loads what every later one reuses.
        await direct(client, sim_base, prompt)
        tab = await Tab(ws_url, cookie, origin, next(conv)).open()
        await tab.ask(prompt)
        await tab.close()

        if "single" in args.phases:
            machine.start()
            direct_runs, relay_runs = [], []
            for _ in range(args.single):
                direct_runs.append(await direct(client, sim_base, prompt))
                tab = await Tab(ws_url, cookie, origin, next(conv)).open()
                relay_runs.append(await tab.ask(prompt))
                await tab.close()
            one = summary("1 stream, 50 tok/s", direct_runs, relay_runs)
            lost, reordered = check_texts(slow, direct_runs, relay_runs)
            print(f"  replies with lost/changed text: {lost}; with out-of-order seqs: {reordered}")
            print(machine.report())
            goals.append(f"added TTFT p50 at 1 stream ≤ 10 ms: {one['added_ttft_p50']:.1f} ms")

        if "many" in args.phases:
            n = args.streams
            machine.start()
            direct_many = await asyncio.gather(*(direct(client, sim_base, long_prompt) for _ in range(n)))
            direct_usage = machine.report()
            tabs = await open_tabs(ws_url, cookie, origin, [next(conv) for _ in range(n)])
            machine.start()
            relay_many = await asyncio.gather(*(t.ask(long_prompt) for t in tabs))
            relay_usage = machine.report()
            await asyncio.gather(*(t.close() for t in tabs))
            many = summary(f"{n} concurrent streams, 50 tok/s, {args.tokens} tokens each", direct_many, relay_many)
            lost, reordered = check_texts(long, direct_many, relay_many)
            print(f"  replies with lost/changed text: {lost}; with out-of-order seqs: {reordered}")
            added_mean = statistics.mean(r.ttft for r in relay_many) - statistics.mean(r.ttft for r in direct_many)
            print(f"  mean added TTFT: {added_mean * 1000:.1f} ms")
            frames = statistics.mean(len(r.gaps) + 1 for r in relay_many)
            streaming = statistics.mean(r.total - r.ttft for r in relay_many)
            direct_streaming = statistics.mean(r.total - r.ttft for r in direct_many)
            print(
                f"  relay: {frames:.1f} frames per reply, first to last frame {streaming * 1000:.0f} ms"
                f" (direct {direct_streaming * 1000:.0f} ms)"
            )
            print(f"  reading directly:\n{direct_usage}\n  through the relay:\n{relay_usage}")
            goals.append(
                f"{n} streams p99 added gap ≤ 100 ms: {many.get('added_gap_p99', float('nan')):.1f} ms;"
                f" lost {lost}, reordered {reordered}"
            )

        if "fast" in args.phases:
            fast = words(3000, "f")
            fast_prompt = f"echo: {fast}[[sim tps=3000 ttft=0.05]]"
            machine.start()
            d_fast = await direct(client, sim_base, fast_prompt)
            tab = await Tab(ws_url, cookie, origin, next(conv)).open()
            r_fast = await tab.ask(fast_prompt)
            await tab.close()
            lost, reordered = check_texts(fast, [d_fast], [r_fast])
            ratio = r_fast.total / d_fast.total
            print("\n== one 3,000 tok/s stream (3,000 tokens)")
            print(
                f"  simulator {d_fast.total * 1000:.0f} ms, relay {r_fast.total * 1000:.0f} ms, "
                f"ratio {ratio:.3f}; frames {len(r_fast.gaps) + 1}; text intact: {not lost and not reordered}"
            )
            print(machine.report())
            goals.append(f"3,000 tok/s within 1.05×: {ratio:.3f}×")

    print("\n== goals")
    for goal in goals:
        print(f"  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--single", type=int, default=20)
    parser.add_argument(
        "--tokens", type=int, default=250, help="tokens per reply of the concurrent phase (250 at 50 tok/s: 5 s)"
    )
    parser.add_argument("--phases", default="single,many,fast", help="comma-separated: single, many, fast")
    args = parser.parse_args()
    args.phases = set(args.phases.split(","))

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orweb")
    sim_port, app_port = free_port(), free_port()
    sim_base = f"http://127.0.0.1:{sim_port}/api/v1"
    env = {
        **os.environ,
        "DATABASE_URL": with_database(server, DB_NAME),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        "SECRET_KEY": "bench-relay",
        "OPENROUTER_BASE_URL": sim_base,
        "OPENROUTER_API_KEY": KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "orweb.settings",
    }
    cookie, ids = setup_database(env)
    procs = {
        "simulator": subprocess.Popen(
            [sys.executable, "-m", "openrouter.simulator", "--port", str(sim_port), "--keys", KEY],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        "daphne": subprocess.Popen(
            [sys.executable, "-m", "orweb.serve", "-b", "127.0.0.1", "-p", str(app_port)] + ["orweb.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        ),
    }
    print(f"simulator pid {procs['simulator'].pid}, daphne pid {procs['daphne'].pid}")
    try:
        wait_for(f"{sim_base}/models", procs["simulator"])
        wait_for(f"http://127.0.0.1:{app_port}/", procs["daphne"])
        base = f"127.0.0.1:{app_port}"
        asyncio.run(measure(args, Machine(procs), sim_base, f"ws://{base}", f"http://{base}", cookie, ids))
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()

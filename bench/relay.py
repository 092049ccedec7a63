"""What the chat relay adds: the app's websocket stream measured against the simulator's own SSE.

One run starts a simulator and one daphne process (fresh database `orweb_bench_relay`), then measures
  1. one stream at a time (50 tok/s): time to first token, directly and through the relay;
  2. 200 concurrent streams of 50 tok/s: added TTFT p50/p99, gaps between frames, lost/reordered text;
  3. one 3,000 tok/s stream: the relay's total time against the simulator's.
"Added" = relay percentile − direct percentile. Text is checked exactly (echo mode), seqs must be 1..n.

    .venv/bin/python bench/relay.py [--streams 200] [--single 20]
Needs PostgreSQL and Redis (DATABASE_URL's server, REDIS_URL; defaults: the local ones).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "orweb_bench_relay"
MODEL = "openai/gpt-4o-mini"
KEY = "sk-or-bench-relay"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


@dataclass
class Run:
    ttft: float = 0.0
    total: float = 0.0
    gaps: list[float] = field(default_factory=list)
    text: str = ""
    ordered: bool = True


async def direct(client: httpx.AsyncClient, base: str, prompt: str) -> Run:
    """Read the simulator's SSE like the gateway does; time from request to first content, and gaps."""
    run = Run()
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "max_tokens": 4000,
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


async def relay(ws_url: str, cookie: str, origin: str, conversation_id: int, prompt: str) -> Run:
    """Send through the app's websocket; time from send to first delta, gaps, and the text by seq."""
    run = Run()
    async with websockets.connect(
        f"{ws_url}/ws/chat/{conversation_id}/",
        max_size=None,
        additional_headers={"Cookie": cookie, "Origin": origin},
    ) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({"action": "send", "content": prompt}))
        last, expected = None, 1
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "delta":
                now = time.perf_counter()
                if last is None:
                    run.ttft = now - started
                else:
                    run.gaps.append(now - last)
                last = now
                run.ordered &= frame["seq"] == expected
                expected = frame["seq"] + 1
                run.text += frame["text"]
            elif frame["type"] == "done":
                run.total = time.perf_counter() - started
                if frame["status"] != "complete":
                    raise RuntimeError(f"reply ended {frame['status']}: {frame.get('error')}")
                return run
            elif frame["type"] == "error":
                raise RuntimeError(frame["message"])
    raise RuntimeError("socket closed before done")


def setup_database(env: dict[str, str]) -> tuple[str, list[int]]:
    """A fresh database with the simulator's catalog, one user, a session and conversations."""
    import psycopg

    admin_url = env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    from billing.models import RateLimit
    from chat.conversations import create_conversation
    from tests.gateway_core.metering_helpers import load_catalog

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
    ids = [create_conversation(user, model=MODEL, max_tokens=4000, title="bench").pk for _ in range(400)]
    return f"sessionid={session.session_key}", ids


def wait_for(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


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


async def measure(
    args: argparse.Namespace, sim_base: str, ws_url: str, origin: str, cookie: str, ids: list[int]
) -> None:
    conv = iter(ids)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        slow = words(50, "s")
        prompt = f"echo: {slow} [[sim tps=50 ttft=0.05]]"

        direct_runs, relay_runs = [], []
        for _ in range(args.single):
            direct_runs.append(await direct(client, sim_base, prompt))
            relay_runs.append(await relay(ws_url, cookie, origin, next(conv), prompt))
        one = summary("1 stream, 50 tok/s", direct_runs, relay_runs)

        n = args.streams
        direct_many = await asyncio.gather(*(direct(client, sim_base, prompt) for _ in range(n)))
        relay_many = await asyncio.gather(
            *(relay(ws_url, cookie, origin, next(conv), prompt) for _ in range(n))
        )
        many = summary(f"{n} concurrent streams, 50 tok/s", direct_many, relay_many)
        lost = sum(r.text != slow for r in relay_many)
        reordered = sum(not r.ordered for r in relay_many)
        print(f"  streams with lost/changed text: {lost}; with out-of-order seqs: {reordered}")

        fast = words(3000, "f")
        fast_prompt = f"echo: {fast} [[sim tps=3000 ttft=0.05]]"
        d_fast = await direct(client, sim_base, fast_prompt)
        r_fast = await relay(ws_url, cookie, origin, next(conv), fast_prompt)
        ratio = r_fast.total / d_fast.total
        print("\n== one 3,000 tok/s stream (3,000 tokens)")
        print(
            f"  simulator {d_fast.total * 1000:.0f} ms, relay {r_fast.total * 1000:.0f} ms, "
            f"ratio {ratio:.3f}; frames {len(r_fast.gaps) + 1}; text intact: {r_fast.text == fast and r_fast.ordered}"
        )

    print("\n== goals")
    print(f"  added TTFT p50 at 1 stream ≤ 10 ms: {one['added_ttft_p50']:.1f} ms")
    print(
        f"  {n} streams p99 added gap ≤ 100 ms: {many.get('added_gap_p99', float('nan')):.1f} ms;"
        f" lost {lost}, reordered {reordered}"
    )
    print(f"  3,000 tok/s within 1.05×: {ratio:.3f}×")
    added_mean = statistics.mean(r.ttft for r in relay_many) - statistics.mean(r.ttft for r in direct_many)
    print(f"  (mean added TTFT at {n} streams: {added_mean * 1000:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--single", type=int, default=20)
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orweb").rsplit("/", 1)[0]
    sim_port, app_port = free_port(), free_port()
    sim_base = f"http://127.0.0.1:{sim_port}/api/v1"
    env = {
        **os.environ,
        "DATABASE_URL": f"{server}/{DB_NAME}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"),
        "SECRET_KEY": "bench-relay",
        "OPENROUTER_BASE_URL": sim_base,
        "OPENROUTER_API_KEY": KEY,
        "DB_CONN_MAX_AGE": "60",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "orweb.settings",
    }
    cookie, ids = setup_database(env)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "openrouter.simulator", "--port", str(sim_port), "--keys", KEY],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(app_port),
                "orweb.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_for(f"{sim_base}/models", procs[0])
        wait_for(f"http://127.0.0.1:{app_port}/", procs[1])
        asyncio.run(
            measure(args, sim_base, f"ws://127.0.0.1:{app_port}", f"http://127.0.0.1:{app_port}", cookie, ids)
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()

"""Scale-out (issue 14): /v1 streaming through one web process, then through two behind the same database
and Redis, side by side in one run, against the simulator called directly as the baseline.

For each shape: N streamed /v1 calls, `--concurrency` at a time (round-robin over the web processes);
throughput (calls/s), time to the first content chunk (p50/p95) and what orweb adds to the simulator's own
(the same calls straight to the simulator), and the web processes' CPU seconds per call (user + system,
from /proc). On a 2-core machine the client, the simulator, PostgreSQL and both web processes share the
cores, so two processes gain little here; CPU per call is the number that carries over to bigger machines
(calls/s a core can serve = 1 / CPU per call).

    python -m orweb.devstack bench scale.py [--requests 600] [--concurrency 24]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx
import psutil
from harness import Service, free_port, fresh_database, percentile, wait_for, with_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "orweb_bench_scale"
SIM_KEY = "sk-or-bench-scale"
MODEL = "openai/gpt-4o-mini"


async def stream(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    """One streamed call read to its end; seconds to its first content chunk."""
    body = {"model": MODEL, "stream": True, "max_tokens": 60, "messages": [{"role": "user", "content": "a story"}]}
    started, first = time.perf_counter(), None
    async with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {") and '"content"' in line:
                chunk = json.loads(line[6:])
                if (chunk.get("choices") or [{}])[0].get("delta", {}).get("content"):
                    first = time.perf_counter() - started
    assert first is not None, "no content came"
    return first


async def load(urls: list[str], headers: dict[str, str], n: int, concurrency: int) -> tuple[float, list[float]]:
    """`n` calls spread round-robin over `urls`; (wall seconds, times to first content)."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)

    async def one(client: httpx.AsyncClient, index: int) -> float:
        async with gate:
            return await stream(client, urls[index % len(urls)], headers)

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(one(client, i) for i in range(min(n, concurrency))))  # warm connections
        started = time.perf_counter()
        ttfts = await asyncio.gather(*(one(client, i) for i in range(n)))
        return time.perf_counter() - started, list(ttfts)


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        for member in [process, *process.children(recursive=True)]:
            times = member.cpu_times()
            total += times.user + times.system
    return total


def setup_database(env: dict[str, str]) -> str:
    """A fresh database with the simulator's catalog and one user with room to spend; their key."""
    fresh_database(env, DB_NAME, ROOT)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from billing.budgets import set_budget
    from billing.models import RateLimit
    from catalog.sync import sync_from_openrouter
    from gateway.keys import create_key

    sync_from_openrouter()
    user = get_user_model().objects.create_user("bench-scale")
    set_budget(user=user, amount=Decimal("1000000"))
    RateLimit.objects.create(
        user=user, requests_per_minute=1_000_000, tokens_per_minute=1_000_000_000, concurrent_streams=10_000
    )
    secret = create_key(user, "scale")[1]
    connections.close_all()
    return secret


def report(name: str, wall: float, ttfts: list[float], n: int, base: list[float], cpu: float | None) -> None:
    added = percentile(ttfts, 50) - percentile(base, 50)
    cpu_text = f"{cpu / n * 1000:>9.1f}" if cpu is not None else f"{'-':>9}"
    print(
        f"  {name:<22}{n / wall:>9.1f}{percentile(ttfts, 50) * 1000:>10.1f}{percentile(ttfts, 95) * 1000:>10.1f}"
        f"{added * 1000:>11.1f}{cpu_text}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=24)
    args = parser.parse_args()

    run = Path(tempfile.mkdtemp(prefix="orweb-scale-"))
    sim_port, ports = free_port(), [free_port(), free_port()]
    database = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orweb")
    env = {
        **os.environ,
        "DATABASE_URL": with_database(database, DB_NAME),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-scale"),
        "OPENROUTER_BASE_URL": f"http://127.0.0.1:{sim_port}/api/v1",
        "OPENROUTER_API_KEY": SIM_KEY,
        "ORWEB_JOURNAL_DIR": str(run / "journal"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "orweb.settings",
    }
    py = sys.executable
    simulator = Service(
        [
            py,
            "-m",
            "openrouter.simulator",
            "--port",
            str(sim_port),
            "--keys",
            SIM_KEY,
            "--ttft",
            "0.05",
            "--tps",
            "400",
        ],
        env,
        ROOT,
        run / "simulator.log",
    )
    serve = [py, "-m", "orweb.serve", "-b", "127.0.0.1", "orweb.asgi:application", "-p"]
    webs = [Service([*serve, str(port)], env, ROOT, run / f"web{port}.log") for port in ports]
    everything = [simulator, *webs]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {args.requests} streamed calls each")
    try:
        wait_for(f"http://127.0.0.1:{sim_port}/api/v1/models", simulator.start())
        secret = setup_database(env)
        processes = []
        for web, port in zip(webs, ports, strict=True):
            wait_for(f"http://127.0.0.1:{port}/health", web.start())
            processes.append(psutil.Process(web.process.pid))
        headers = {"Authorization": f"Bearer {secret}"}
        sim_headers = {"Authorization": f"Bearer {SIM_KEY}"}
        direct = [f"http://127.0.0.1:{sim_port}/api/v1/chat/completions"]
        urls = [f"http://127.0.0.1:{port}/v1/chat/completions" for port in ports]

        print(f"\n  {'':<22}{'calls/s':>9}{'TTFT p50':>10}{'TTFT p95':>10}{'added p50':>11}{'CPU ms':>9}")
        wall, base = asyncio.run(load(direct, sim_headers, args.requests, args.concurrency))
        report("simulator directly", wall, base, args.requests, base, None)
        results = {}
        for name, targets, used in (
            ("one web process", urls[:1], processes[:1]),
            ("two web processes", urls, processes),
        ):
            before = cpu_seconds(used)
            wall, ttfts = asyncio.run(load(targets, headers, args.requests, args.concurrency))
            cpu = (cpu_seconds(used) - before) * args.requests / (args.requests + min(args.requests, args.concurrency))
            results[name] = args.requests / wall
            report(name, wall, ttfts, args.requests, base, cpu)
        ratio = results["two web processes"] / results["one web process"]
        print(f"\n  two processes / one: {ratio:.2f}x the throughput (ms are per call; CPU is the web processes')")
        return 0
    finally:
        for service in reversed(everything):
            service.stop()
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

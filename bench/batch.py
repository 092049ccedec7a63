"""Batch jobs (issue 11): wall time of a big job against the ideal, with and without 429s; interactive TTFT
with and without a job running; peak memory while a 200 MB, 50,000-line file is stored, validated and run.

The stack: a simulator answering after L seconds (`--latency`), a Redis of the bench's own, a fresh database
(`orweb_bench_batch` on DATABASE_URL's server) and one Celery worker on the "batches" queue with `--workers`
processes, each a run of the job (ORWEB_BATCH_RUNS_PER_JOB). N lines (`--lines`) at concurrency C
(`--concurrency`) under a rate limit of R requests/s (`--rate`, the user's requests per minute / 60): the
ideal is max(N·L/C, N/R); the goal is ≥ 0.9 of it, and ≥ 0.85 when 5% of the requests answer 429 with
Retry-After: 1 first. Every line must end done, none twice.

Choosing L and C. The ideal counts only the wait upstream, but every line also costs the stack CPU: the
worker (the metered path's admission and settlement, the line's claim and settle), PostgreSQL, the
simulator. The bench prints it ("stack CPU per line", about 11 ms here) and the share of the machine's
cores the run's line rate asks for. A setting's demand is that cost times its rate C/L:
- L=0.25 s, C=32 (the issue's, the default): 128 lines/s, about 1.4 of a 2-core machine's cores before
  anything else runs on it; there the ratio measures the machine's headroom as much as the runner. It stays
  the default so that numbers compare with earlier ones.
- L=0.5 s, C=32: 64 lines/s, about 0.7 cores: the demand fits a 2-core machine, and what keeps the ratio
  under 1 is each line's own latency on the way (the metered path's database hops, the claim and settle).
Run the final numbers on a quiet machine: the bench prints the load average and how busy the machine was.

This process plays the web process: it stores and validates the files (batches.formats, batches.jobs), so
its peak RSS is the web side's; the worker's is read from /proc. TTFT is of a streamed call through the
metered path from here, p50 of `--ttft-samples`, before the job and while it runs.

    python -m orweb.devstack bench batch.py [--lines 10000] [--latency 0.25] [--concurrency 32] [--workers 2]
        [--big-lines 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from harness import RedisServer, Service, free_port, fresh_database, percentile, wait_for, with_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "orweb_bench_batch"
SIM_KEY = "sk-or-bench-batch"
MODEL = "openai/gpt-4o-mini"


def services(run: Path, sim_port: int, redis: RedisServer, args: argparse.Namespace) -> tuple[dict, list[Service]]:
    database = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orweb")
    env = {
        **os.environ,
        "DATABASE_URL": with_database(database, DB_NAME),
        "REDIS_URL": redis.url,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-batch"),
        "OPENROUTER_BASE_URL": f"http://127.0.0.1:{sim_port}/api/v1",
        "OPENROUTER_API_KEY": SIM_KEY,
        "ORWEB_JOURNAL_DIR": str(run / "journal"),
        "ORWEB_BATCH_DIR": str(run / "batches"),
        "ORWEB_BATCH_MAX_CONCURRENCY": str(args.concurrency),
        "ORWEB_BATCH_USER_CONCURRENCY": str(args.concurrency),
        "ORWEB_BATCH_RUNS_PER_JOB": str(args.workers),
        "DB_POOL_MAX": str(max(20, args.concurrency)),
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "orweb.settings",
    }
    py = sys.executable
    simulator = [py, "-m", "openrouter.simulator", "--port", str(sim_port), "--keys", SIM_KEY]
    simulator += ["--ttft", str(args.latency), "--tps", "0", "--generation-delay", "0.1"]
    worker = [py, "-m", "celery", "-A", "orweb", "worker", "-Q", "batches", "-c", str(args.workers), "-l", "warning"]
    return env, [Service(simulator, env, ROOT, run / "simulator.log"), Service(worker, env, ROOT, run / "worker.log")]


def setup(env: dict[str, str], rate: float) -> object:
    fresh_database(env, DB_NAME, ROOT)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from billing.budgets import set_budget
    from billing.models import RateLimit
    from catalog.sync import sync_from_openrouter

    sync_from_openrouter()
    user = get_user_model().objects.create_user("bench-batch")
    set_budget(user=user, amount=Decimal("1000000"))
    RateLimit.objects.create(
        user=user, requests_per_minute=int(rate * 60), tokens_per_minute=2_000_000_000, concurrent_streams=10_000
    )
    return user


def make_job(user: object, lines: list[str], concurrency: int, name: str) -> object:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from batches import formats, jobs

    content = ("\n".join(lines) + "\n").encode()
    file = formats.store_upload(user, SimpleUploadedFile(name, content))
    return jobs.create_job(user, file, origin="web", concurrency=concurrency)


def run_job(job: object) -> float:
    """Start the job, wait for it to complete; its wall time (started -> finished, the database's clocks)."""
    from batches import jobs

    jobs.start(job)
    while True:
        job.refresh_from_db()
        if job.is_finished:
            break
        time.sleep(0.5)
    assert job.status == "completed", job.status
    return (job.finished_at - job.started_at).total_seconds()


def check_lines(job: object, n: int) -> str:
    from django.db.models import Count

    from batches.models import BatchLine

    counts = dict(BatchLine.objects.filter(job=job).values_list("status").annotate(n=Count("id")))
    generations = BatchLine.objects.filter(job=job, status="done").values("generation_id").distinct().count()
    lost = n - counts.get("done", 0)
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    return f"done {done}/{n}, failed {failed}, lost {lost}, distinct generations {generations}"


async def ttft_samples(user: object, samples: int) -> list[float]:
    from gateway import metered
    from gateway.types import ChatRequest

    found = []
    for n in range(samples):
        request = ChatRequest(model=MODEL, messages=[{"role": "user", "content": f"interactive {n}"}], max_tokens=20)
        started = time.monotonic()
        async with metered.stream(user, request, source="api") as call:
            async for _ in call:
                found.append(time.monotonic() - started)
                break
    return found


def ttft(user: object, samples: int) -> float:
    return percentile(asyncio.run(ttft_samples(user, samples)), 50) * 1000


def rss_kb(pid: int) -> tuple[int, int]:
    """(current, peak) resident set in kB of a process and the children it started (the pool): current is
    their sum, peak the largest one process reached."""
    total = peak = 0
    for child in [pid, *_children(pid)]:
        status = Path(f"/proc/{child}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        total += int(fields.get("VmRSS", "0 kB").split()[0])
        peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]))
    return total, peak


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its children, live or exited, have used so far: a measure of
    the work per line that doesn't depend on what else the machine is doing, unlike wall time."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for child in [pid, *_children(pid)]:
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(value) for value in fields[11:15])  # utime, stime, and those of reaped children
    return total / ticks


def postmaster_pid() -> int:
    """The bench database's PostgreSQL server (the parent of this connection's backend): its CPU and its
    backends' is the database's share of the work."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


class StackCpu:
    """CPU seconds the bench's stack uses (worker, simulator, Redis, PostgreSQL): per line, and as the share
    of the machine's cores that the run's line rate asks of it."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def line(self, lines: int, wall: float) -> str:
        used = {name: (cpu_seconds(pid) - self.start[name]) * 1000 / lines for name, pid in self.pids.items()}
        total = sum(used.values())
        parts = ", ".join(f"{name} {ms:.1f}" for name, ms in used.items())
        demand = total / 1000 * lines / wall
        return f"   stack CPU per line: {total:.1f} ms ({parts}): {demand:.2f} of {os.cpu_count()} cores at this rate"


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far: what the run asked of it, the bench's stack and
    anything else running included."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def machine_line(since: tuple[int, int]) -> str:
    busy, total = (now - then for now, then in zip(machine_ticks(), since, strict=True))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"   machine: {100 * busy / max(total, 1):.0f}% of {os.cpu_count()} cores busy; load average {load}"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.extend(int(c) for c in children)
    return [c for child in found for c in (child, *_children(child))]


def own_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_file_lines(n: int, size: int) -> list[str]:
    padding = "x" * max(size - 120, 0)
    return [json.dumps({"prompt": f"line {i}: summarise [[sim tokens=2]] {padding}", "model": MODEL}) for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.25, help="L: seconds the simulator takes per request")
    parser.add_argument("--concurrency", type=int, default=32, help="C: lines in flight at once")
    parser.add_argument("--rate", type=float, default=1000.0, help="R: the user's rate limit, requests per second")
    parser.add_argument("--workers", type=int, default=2, help="batch worker processes, each a run of the job")
    parser.add_argument("--ttft-samples", type=int, default=20)
    parser.add_argument("--big-lines", type=int, default=50_000, help="0 skips the memory run")
    parser.add_argument("--big-bytes", type=int, default=200 * 1024 * 1024 - 1024 * 1024)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stopped: the finally below still stops the stack

    run = Path(tempfile.mkdtemp(prefix="orweb-bench-batch-"))
    sim_port = free_port()
    redis = RedisServer(run, ROOT)
    env, (simulator, worker) = services(run, sim_port, redis, args)
    code = 1
    try:
        redis.start()
        wait_for(f"http://127.0.0.1:{sim_port}/api/v1/models", simulator.start())
        user = setup(env, args.rate)
        worker.start()
        time.sleep(3)  # the worker connects to the broker
        n, lat, c, r = args.lines, args.latency, args.concurrency, args.rate
        ideal = max(n * lat / c, n / r)
        print(f"N={n} L={lat}s C={c} R={r}/s, {args.workers} worker processes: ideal max(N·L/C, N/R) = {ideal:.1f} s")

        quiet = ttft(user, args.ttft_samples)
        plain = make_job(
            user, [json.dumps({"prompt": f"q{i} [[sim tokens=5]]", "model": MODEL}) for i in range(n)], c, "plain.jsonl"
        )
        from batches import jobs

        stack = {"worker": worker.process.pid, "simulator": simulator.process.pid}
        stack |= {"Redis": redis.process.pid, "PostgreSQL": postmaster_pid()}
        cpu, ticks, spent = cpu_seconds(worker.process.pid), machine_ticks(), StackCpu(stack)
        jobs.start(plain)
        time.sleep(2)
        busy = ttft(user, args.ttft_samples)
        while True:
            plain.refresh_from_db()
            if plain.is_finished:
                break
            time.sleep(0.5)
        wall = (plain.finished_at - plain.started_at).total_seconds()
        print(f"\n== plain: {wall:.1f} s, {ideal / wall:.2f}× the ideal (goal ≥ 0.90); {check_lines(plain, n)}")
        print(f"   worker CPU: {(cpu_seconds(worker.process.pid) - cpu) * 1000 / n:.1f} ms per line")
        print(spent.line(n, wall))
        print(machine_line(ticks))
        print(
            f"== interactive TTFT p50: {quiet:.0f} ms without a job, {busy:.0f} ms with one running"
            f" ({busy / quiet:.2f}×, goal ≤ 1.5×)"
        )

        rows = []
        for i in range(n):
            fault = f" [[sim status=429 retry_after=1 fail_first=1 key=b{i}]]" if i % 20 == 0 else ""
            rows.append(json.dumps({"prompt": f"r{i} [[sim tokens=5]]{fault}", "model": MODEL}))
        limited = make_job(user, rows, c, "limited.jsonl")
        cpu, ticks, spent = cpu_seconds(worker.process.pid), machine_ticks(), StackCpu(stack)
        wall = run_job(limited)
        print(
            f"== 5% 429 (Retry-After 1 s): {wall:.1f} s, {ideal / wall:.2f}× the ideal (goal ≥ 0.85);"
            f" {check_lines(limited, n)}"
        )
        print(f"   worker CPU: {(cpu_seconds(worker.process.pid) - cpu) * 1000 / n:.1f} ms per line")
        print(spent.line(n, wall))
        print(machine_line(ticks))
        now, peak = rss_kb(worker.process.pid)
        print(f"   worker RSS now, all its processes: {now / 1024:.0f} MB; largest process peak: {peak / 1024:.0f} MB")

        if args.big_lines:
            big_memory(user, args, worker)
        code = 0
        return code
    finally:
        worker.stop()
        simulator.stop()
        redis.stop()
        if code == 0:
            shutil.rmtree(run, ignore_errors=True)
        else:
            print(f"logs kept in {run}")


def big_memory(user: object, args: argparse.Namespace, worker: Service) -> None:
    """Store, validate and run a file of `--big-lines` lines, `--big-bytes` in all, watching memory."""
    from django.core.files.uploadedfile import TemporaryUploadedFile

    from batches import formats, jobs

    size = args.big_bytes // args.big_lines
    before = own_peak_mb()
    upload = TemporaryUploadedFile("big.jsonl", "application/jsonl", 0, "utf-8")
    written = 0
    for start in range(0, args.big_lines, 1000):
        chunk = ("\n".join(big_file_lines(min(1000, args.big_lines - start), size)) + "\n").encode()
        upload.write(chunk)
        written += len(chunk)
    upload.size = written
    upload.seek(0)
    base = own_peak_mb()
    started = time.monotonic()
    file = formats.store_upload(user, upload)
    stored = time.monotonic() - started
    job = jobs.create_job(user, file, origin="web", concurrency=args.concurrency)
    validated = time.monotonic() - started - stored
    print(
        f"\n== big file: {file.lines:,} lines, {file.bytes / 1024 / 1024:.0f} MB: stored in {stored:.1f} s,"
        f" validated in {validated:.1f} s ({job.valid:,} valid)"
    )
    print(
        f"   this (web) process peak RSS: {before:.0f} MB before, {base:.0f} MB with the upload on disk,"
        f" {own_peak_mb():.0f} MB after storing and validating"
    )
    _, worker_before = rss_kb(worker.process.pid)
    wall = run_job(job)
    now, peak = rss_kb(worker.process.pid)
    print(
        f"   ran in {wall:.1f} s; worker RSS now {now / 1024:.0f} MB, peak {worker_before / 1024:.0f} MB before"
        f" -> {peak / 1024:.0f} MB after; {check_lines(job, args.big_lines)}"
    )
    upload.close()


if __name__ == "__main__":
    sys.exit(main())

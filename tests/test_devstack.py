"""`make run`'s embedded mode: real servers from wheels, a 200 /health, and nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from orweb.devstack import ROOT, free_port


def _wait_for_health(url: str, proc: subprocess.Popen, timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the stack exited early with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail("/health never answered 200")


def test_run_serves_health_and_stops_every_process(tmp_path: Path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "DEBUG"}
    }
    port = free_port()
    env.update(ORWEB_DATA_DIR=str(tmp_path / "data"), PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "orweb.devstack", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        response = _wait_for_health(f"http://127.0.0.1:{port}/health", proc)
        assert response.json()["checks"] == {"database": "ok", "redis": "ok", "upstream": "ok"}
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert "Simulated OpenRouter" in home.text
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5  # redis, simulator, daphne, worker, beat (and postgres)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "sign in as admin" in output
    time.sleep(0.5)
    alive = [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [c.cmdline() for c in alive]
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if any(str(tmp_path) in part for part in (p.info["cmdline"] or []))
    ]
    assert leftovers == []


def test_a_partial_test_run_measures_the_money_code_without_the_floor(tmp_path: Path):
    """`make test ARGS=...` measures coverage into its own data dir; only a whole-suite run is held to
    100% on the money code (tests/helpers/suite_checks.py), so this run of a few tests passes."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "COVERAGE_FILE"}}
    env["ORWEB_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "orweb.devstack", "test", "tests/orweb", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout and "whole-suite checks" not in done.stdout
    assert (tmp_path / "test" / ".coverage").is_file()


@pytest.mark.django_db
def test_the_demo_admin_is_made_even_with_a_password_that_starts_with_a_dash(django_user_model):
    from django.core.management import call_command

    from orweb.devstack import demo_admin_command

    call_command(*demo_admin_command("--QBBiG7javouL-k"))

    assert django_user_model.objects.get(username="admin").check_password("--QBBiG7javouL-k")

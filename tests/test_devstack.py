"""`make run`'s embedded mode: real servers from wheels, a 200 /health, DEBUG off with its own error pages,
a data directory only its owner can read, and nothing left behind, even after a second SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from orweb import devstack
from orweb.devstack import ROOT, free_port, private_text


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


def _start_run(data: Path, port: int, **extra: str) -> subprocess.Popen:
    """`python -m orweb.devstack run` as `make run` starts it, with its own data directory and port."""
    unset = {"DATABASE_URL", "REDIS_URL", "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "DEBUG", "SECRET_KEY"}
    unset |= {"WEB", "WORKERS"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(ORWEB_DATA_DIR=str(data), PORT=str(port), **extra)
    return subprocess.Popen(
        [sys.executable, "-m", "orweb.devstack", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _left_running(children: list[psutil.Process], tmp_path: Path) -> list[list[str]]:
    """The command lines of `children`, or of any process naming `tmp_path`, that still run."""
    alive = [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    named = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if any(str(tmp_path) in part for part in (p.info["cmdline"] or []))
    ]
    return [child.cmdline() for child in alive] + named


def _not_private(data: Path) -> list[str]:
    """Files and directories under `data` that anyone but their owner may read, write or enter (the
    PostgreSQL socket is guarded by its 0700 directory)."""
    found = []
    for path in [data, *data.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISSOCK(mode) and not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path.relative_to(data)} {stat.filemode(mode)}")
    return found


def test_run_serves_health_and_stops_every_process(tmp_path: Path):
    port = free_port()
    proc = _start_run(tmp_path / "data", port)
    try:
        response = _wait_for_health(f"http://127.0.0.1:{port}/health", proc)
        assert response.json()["checks"] == {"database": "ok", "redis": "ok", "upstream": "ok"}
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert "Simulated OpenRouter" in home.text
        # DEBUG is off: our own 404, no list of URL patterns; static files are served all the same.
        missing = httpx.get(f"http://127.0.0.1:{port}/no-such-page/", timeout=5)
        assert missing.status_code == 404 and "Back to orweb" in missing.text and "URLconf" not in missing.text
        assert httpx.get(f"http://127.0.0.1:{port}/static/orweb/app.css", timeout=5).status_code == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5  # redis, simulator, daphne, worker, beat (and postgres)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "sign in as admin" in output
    time.sleep(0.5)
    assert _left_running(children, tmp_path) == []
    data = tmp_path / "data"
    assert (data / "secret-key").stat().st_size >= 50
    assert any((data / "redis").rglob("*.aof*")), "Redis kept no append-only file"
    assert _not_private(data) == []


def test_a_second_sigterm_while_stopping_still_stops_every_process(tmp_path: Path):
    port = free_port()
    proc = _start_run(tmp_path / "data", port)
    try:
        _wait_for_health(f"http://127.0.0.1:{port}/health", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGTERM)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "stopping" in line:
            proc.send_signal(signal.SIGTERM)  # while the first one's cleanup runs
            break
    output, _ = proc.communicate(timeout=60)
    output = "".join(lines) + output
    assert proc.returncode == 0, output
    assert _left_running(children, tmp_path) == []


def test_private_files_are_private_from_their_creation(tmp_path: Path):
    """Made under a umask that would leave them world-readable, and read back, not rewritten, later."""
    previous = os.umask(0)
    try:
        first = private_text(tmp_path / "secret", lambda: "s3cret\n")
    finally:
        os.umask(previous)
    again = private_text(tmp_path / "secret", lambda: "another")

    assert first == again == "s3cret"
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_a_partial_test_run_measures_the_money_code_without_the_floor():
    """`make test ARGS=...` measures coverage into its own data dir; only a whole-suite run is held to
    100% on the money code (tests/helpers/suite_checks.py), so this run of a few tests passes.

    The data dir is outside pytest's temporary tree: the inner run's pytest makes that tree's root private
    again as it starts, and the embedded PostgreSQL (run as a user of its own under root) must reach it."""
    tmp_path = Path(tempfile.mkdtemp(prefix="orweb-partial-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "COVERAGE_FILE"}}
    env["ORWEB_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "orweb.devstack", "test", "tests/orweb/test_money.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout and "whole-suite checks" not in done.stdout
    assert (tmp_path / "test" / ".coverage").is_file()
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.django_db
def test_the_demo_admin_is_made_even_with_a_password_that_starts_with_a_dash(django_user_model):
    from django.core.management import call_command

    from orweb.devstack import demo_admin_command

    call_command(*demo_admin_command("--QBBiG7javouL-k"))

    assert django_user_model.objects.get(username="admin").check_password("--QBBiG7javouL-k")


def test_a_celery_process_that_exits_is_started_again_and_another_stops_the_stack(tmp_path: Path):
    stack = devstack.Stack(tmp_path)
    try:
        worker = stack.spawn("worker", [sys.executable, "-c", "pass"])
        worker.wait(10)
        assert stack.restart_exited(("worker",)) is None
        [(name, again)] = stack.procs
        assert name == "worker" and again.pid != worker.pid
        stack.spawn("web", [sys.executable, "-c", "pass"]).wait(10)
        assert stack.restart_exited(("worker",)) == "web"
    finally:
        stack.stop()


def test_manage_commands_work_beside_a_scaled_out_stack_as_the_readme_shows(tmp_path: Path):
    """`make run WEB=2 WORKERS=2` serves from two web processes on one database; `.venv/bin/python manage.py
    create_api_key ...` and `make manage ARGS="set_budget ..."` in another shell, with nothing set but the
    data directory `make run` uses, find that stack's database (the key works on both web processes)."""
    port = free_port()
    while not all(_port_free(p) for p in (port, port + 1)):
        port = free_port()
    data = tmp_path / "data"
    proc = _start_run(data, port, WEB="2", WORKERS="2")
    try:
        for web in (port, port + 1):
            _wait_for_health(f"http://127.0.0.1:{web}/health", proc)
        unset = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SECRET_KEY_FILE", "DEBUG", "OPENROUTER_API_KEY"}
        env = {k: v for k, v in os.environ.items() if k not in unset}
        env["ORWEB_DATA_DIR"] = str(data)
        made = subprocess.run(
            [sys.executable, "manage.py", "create_api_key", "admin", "--name", "cli"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        secret = made.stdout.strip().splitlines()[-1]
        for web in (port, port + 1):
            models = httpx.get(
                f"http://127.0.0.1:{web}/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=10
            )
            assert models.status_code == 200, models.text
        budget = subprocess.run(
            ["make", "-s", "manage", "ARGS=set_budget admin 25"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert budget.returncode == 0, budget.stdout + budget.stderr
        assert "25" in budget.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "PostgreSQL: postgresql://" in output
    assert "2 web processes, 2 workers of each queue" in output
    assert not (data / devstack.RUNNING_FILE).exists()

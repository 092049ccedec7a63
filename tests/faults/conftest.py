"""Faults done to real processes: a web process (`python -m orweb.serve`, daphne) the test can kill -9
and start again, a PostgreSQL of the test's own it can stop, a Celery worker it can kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from orweb.celery import app as celery_app
from orweb.devstack import ROOT, free_port, wait_for_port
from tests.conftest import SIM_KEY, database_url


class WebProcess:
    """One orweb web process on a fixed port; `kill()` is SIGKILL, `start()` starts a new one in its
    place (same port, same journal directory), as a supervisor would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orweb.serve", "-b", "127.0.0.1", "-p", str(self.port), "orweb.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def server_env(simulator, settings, journal: Path, **extra: str) -> dict[str, str]:
    """The environment of a server process that shares the test's database, Redis and simulator."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "OPENROUTER_BASE_URL": simulator.base_url,
        "OPENROUTER_API_KEY": SIM_KEY,
        "ORWEB_JOURNAL_DIR": str(journal),
        **extra,
    }


@pytest.fixture
def journal_dir(tmp_path: Path, settings) -> Path:
    """A journal directory shared by the test and the processes it starts (and only by them)."""
    directory = tmp_path / "journal"
    directory.mkdir()
    settings.ORWEB_JOURNAL_DIR = str(directory)
    return directory


@pytest.fixture
def web(simulator, settings, journal_dir) -> Iterator[WebProcess]:
    server = WebProcess(server_env(simulator, settings, journal_dir))
    server.start()
    yield server
    server.stop()


WORKER = [sys.executable, "-m", "celery", "-A", "orweb", "worker", "-l", "warning", "-P", "solo", "--without-gossip"]


@pytest.fixture
def start_worker(simulator, settings, journal_dir) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start real Celery workers (`start(queues="celery", **extra_env)`), any number; all killed after.

    `start(ready=True)` returns only once the worker answers a ping, so that it consumes what the test sends
    from then on: a worker still starting on a busy machine may otherwise find a task's countdown past."""
    celery_app.control.purge()
    workers: list[subprocess.Popen] = []

    def start(queues: str = "celery", *, ready: bool = False, **extra: str) -> subprocess.Popen:
        env = server_env(simulator, settings, journal_dir, **extra)
        name = f"faults{len(workers) + 1}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        worker = subprocess.Popen([*WORKER, "-Q", queues, "-n", name], cwd=ROOT, env=env)
        workers.append(worker)

        def answers() -> bool:
            assert worker.poll() is None, f"Celery worker {name} exited with {worker.returncode}"
            return bool(celery_app.control.ping(destination=[name], timeout=0.5))

        if ready:
            wait_until(answers, 90, f"Celery worker {name} never answered a ping")
        return worker

    yield start
    for worker in workers:
        worker.kill()
        worker.wait(20)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)

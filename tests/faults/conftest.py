"""Faults done to real processes: a web process (`python -m orweb.serve`, daphne) the test can kill -9
and start again, a PostgreSQL of the test's own it can stop, a Celery worker it can kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

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

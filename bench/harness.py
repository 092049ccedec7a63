"""Pieces the benchmarks share: pointing at a scratch database, waiting for a server to come up."""

from __future__ import annotations

import socket
import subprocess
import time
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

"""Tests reach nothing beyond this machine: pytest-socket (pyproject's addopts) lets a connection through
only to loopback or a unix socket, so a call that would leave the machine fails loudly instead of hanging
or, worse, reaching a real service. Subprocesses (a Celery worker, a served app) are not covered."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from pytest_socket import SocketConnectBlockedError

OUTSIDE = ("203.0.113.7", 443)  # TEST-NET-3: documentation only, never routed

pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket:UserWarning")


def test_an_outside_address_is_refused():
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(OUTSIDE, timeout=1)


async def test_an_outside_address_is_refused_on_the_event_loop_too():
    with pytest.raises(SocketConnectBlockedError):
        await asyncio.open_connection(*OUTSIDE)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_allowed(host):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection((host, port), timeout=1):
            pass


def test_unix_sockets_are_allowed(tmp_path: Path):
    """The embedded PostgreSQL listens on one."""
    path = str(tmp_path / "socket")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)

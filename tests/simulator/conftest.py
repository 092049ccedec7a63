"""Fixtures: a fast in-process simulator per test, and one served on a real socket when needed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from openrouter.simulator import SimState, create_app
from tests.helpers.simulator import FAST, KEY


@pytest.fixture
def sim_app() -> Starlette:
    return create_app(FAST)


@pytest.fixture
def sim(sim_app: Starlette) -> SimState:
    return sim_app.state.sim


@pytest.fixture
async def sim_client(sim_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim_app)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://sim/api/v1", headers=headers) as client:
        yield client


@pytest.fixture
async def control(sim_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim_app), base_url="http://sim/_sim") as client:
        yield client


@dataclass
class Server:
    """A simulator on a real socket: ``base_url`` for clients, ``sim`` for its state."""

    base_url: str
    root: str
    sim: SimState


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sim_server() -> Iterator[Server]:
    sim_app = create_app(FAST)
    port = _free_port()
    config = uvicorn.Config(sim_app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "the simulator did not start"
        time.sleep(0.01)
    root = f"http://127.0.0.1:{port}"
    yield Server(base_url=f"{root}/api/v1", root=root, sim=sim_app.state.sim)
    uvicorn_server.should_exit = True
    thread.join(5)

"""The simulator, in-process (httpx.ASGITransport) and on a real socket (uvicorn in a thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from openrouter import OpenRouterClient
from openrouter.simulator import SimState, SimulatorConfig, create_app
from tests.helpers.openrouter import API_KEY, FAST_RETRY

SIM_CONFIG = SimulatorConfig(ttft=0, tps=0, keepalive_interval=0.05, generation_delay=0)


@pytest.fixture(scope="session")
def live_simulator() -> Iterator[tuple[Starlette, str]]:
    """One simulator served by uvicorn on a free port for the whole session; tests reset its state."""
    app = create_app(SIM_CONFIG)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the simulator did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield app, f"http://127.0.0.1:{port}/api/v1"
    server.should_exit = True
    thread.join(timeout=10)


def reset_when_idle(app: Starlette) -> None:
    """Reset the shared simulator once the streams earlier tests closed have been noticed and billed."""
    sim = app.state.sim
    deadline = time.monotonic() + 10
    while sim.open_streams > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    sim.reset()


@pytest.fixture(params=["asgi", "socket"])
def transport_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sim_app(transport_kind: str, request: pytest.FixtureRequest) -> Starlette:
    if transport_kind == "socket":
        app, _ = request.getfixturevalue("live_simulator")
        reset_when_idle(app)
        return app
    return create_app(SIM_CONFIG)


@pytest.fixture
def sim(sim_app: Starlette) -> SimState:
    return sim_app.state.sim


@pytest.fixture
async def openrouter_client(
    sim_app: Starlette, transport_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[OpenRouterClient]:
    """A client of the simulator, over the transport under test, with tiny retry delays."""
    if transport_kind == "socket":
        _, base_url = request.getfixturevalue("live_simulator")
        async with OpenRouterClient(API_KEY, base_url, retry=FAST_RETRY, idle_timeout=5) as live:
            yield live
        return
    transport = httpx.ASGITransport(app=sim_app)
    async with OpenRouterClient(API_KEY, "http://sim/api/v1", transport=transport, retry=FAST_RETRY) as local:
        yield local


@pytest.fixture
async def live_client(live_simulator: tuple[Starlette, str]) -> AsyncIterator[OpenRouterClient]:
    """A socket client with a short idle timeout, for timing-dependent behaviour ASGITransport can't show."""
    app, base_url = live_simulator
    reset_when_idle(app)
    async with OpenRouterClient(API_KEY, base_url, retry=FAST_RETRY, idle_timeout=0.3) as live:
        yield live

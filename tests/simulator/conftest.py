"""Fixtures: a fast in-process simulator per test, and one served on a real socket when needed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from openrouter.simulator import SimState, SimulatorConfig, create_app

KEY = "sk-or-v1-simulator-test"
FAST = SimulatorConfig(ttft=0, tps=0, generation_delay=0, keepalive_interval=0.05)


@pytest.fixture
def app() -> Starlette:
    return create_app(FAST)


@pytest.fixture
def sim(app: Starlette) -> SimState:
    return app.state.sim


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim/api/v1", headers=headers
    ) as client:
        yield client


@pytest.fixture
async def control(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim/_sim"
    ) as client:
        yield client


def chat(
    content: str | list[dict[str, Any]] = "hello", model: str = "openai/gpt-4o", **extra: Any
) -> dict[str, Any]:
    """A chat request body with one user message."""
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 200, **extra}


@dataclass
class Stream:
    """A streamed answer taken apart: comments, JSON chunks (or raw text when invalid), and [DONE]."""

    items: list[str | dict[str, Any]]

    @classmethod
    def parse(cls, text: str) -> Stream:
        items: list[str | dict[str, Any]] = []
        for block in text.split("\n\n"):
            if not block:
                continue
            if block.startswith(":"):
                items.append(block)
            else:
                assert block.startswith("data: "), block
                data = block[len("data: ") :]
                try:
                    items.append(json.loads(data))
                except json.JSONDecodeError:
                    items.append(data)
        return cls(items)

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [i for i in self.items if isinstance(i, dict)]

    @property
    def content(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c.get("choices"))

    @property
    def finish_reasons(self) -> list[str]:
        return [
            c["choices"][0]["finish_reason"]
            for c in self.chunks
            if c.get("choices") and c["choices"][0]["finish_reason"]
        ]

    @property
    def usage(self) -> dict[str, Any] | None:
        return next((c["usage"] for c in self.chunks if "usage" in c), None)

    @property
    def done(self) -> bool:
        return self.items[-1] == "[DONE]"


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
def server() -> Iterator[Server]:
    app = create_app(FAST)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "the simulator did not start"
        time.sleep(0.01)
    root = f"http://127.0.0.1:{port}"
    yield Server(base_url=f"{root}/api/v1", root=root, sim=app.state.sim)
    uvicorn_server.should_exit = True
    thread.join(5)

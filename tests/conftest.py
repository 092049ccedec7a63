"""Shared fixtures. Tests talk to the real PostgreSQL and Redis that `make test` provides; the only
stand-in is OpenRouter, played by the simulator served on a real local socket.

The people of every access test are here: `owner`, `teammate` (same group), `outsider` (no shared group)
and `staff`, each with a signed-in `<persona>_client`; tests/helpers/personas.py opens websockets and
makes API keys as them. `superuser` is for Django's admin site only.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import freezegun
import httpx
import pytest
import redis
import uvicorn
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from tests.helpers.personas import person, signed_in

pytest_plugins = ["tests.helpers.suite_checks"]

# pytest times tests with the clock freezegun stops: without this, --durations reports a frozen test's
# setup as decades long.
freezegun.configure(extend_ignore_list=["_pytest.timing"])

SIM_KEY = "sk-or-test-server-key"


@dataclass
class SimulatorServer:
    """A running simulator: `base_url` is what the app calls, `control` changes its world."""

    base_url: str
    root: str
    app: object

    def control(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, f"{self.root}/_sim/{path.lstrip('/')}", timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def reset(self) -> None:
        self.control("POST", "reset")

    def configure(self, **config) -> None:
        self.control("PATCH", "config", json=config)

    def fault(self, model: str, spec: str) -> None:
        self.control("POST", "faults", json={"model": model, "spec": spec})

    def stats(self) -> dict:
        return self.control("GET", "stats").json()

    def billed(self, wait: float = 10.0) -> dict[str, Decimal]:
        """What the simulator billed, generation id -> exact cost, once nothing is in flight there: a stream
        whose client left is billed when the simulator notices, an abandoned non-streamed reply when it would
        have ended. Waits up to `wait` seconds for that, then fails (a test compares finished work)."""
        deadline = time.monotonic() + wait
        while (listing := self.control("GET", "billed").json())["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not listing["in_flight"], f"{listing['in_flight']} generation(s) still in flight at the simulator"
        return {generation["id"]: Decimal(generation["cost"]) for generation in listing["data"]}

    def add_usage(self, amount: Decimal | str, day: date | None = None) -> None:
        """Usage of the key that no generation accounts for (another app sharing the key): drift in `/key`."""
        self.control("POST", "usage", json={"amount": str(amount), "day": day and day.isoformat()})


def database_url(db: dict) -> str:
    """A database's settings as a URL for another process, over TCP or a unix socket (embedded server)."""
    if db["HOST"]:
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"postgresql://{db['USER']}@/{db['NAME']}?host={db['OPTIONS']['host']}"


@pytest.fixture(autouse=True, scope="session")
def _journal_dir() -> Iterator[None]:
    """Each test session journals its attempts in a directory of its own (servers it starts inherit it),
    so journals left by an earlier run are never replayed into this run's database."""
    directory = tempfile.mkdtemp(prefix="orweb-journal-")
    os.environ["ORWEB_JOURNAL_DIR"] = django_settings.ORWEB_JOURNAL_DIR = directory
    yield
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _close_pool(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Close the connection pool before the test database is dropped: the attempts thread
    (billing.attempts) may have borrowed a connection from it, and pooled connections stay open."""
    yield
    with django_db_blocker.unblock():
        connection.close_pool()


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """Rate-limit counters, stream slots and a reply's stored deltas live in Redis: each test starts with
    none (message ids restart with each test's fresh database, so an earlier test's deltas would match).
    Only this process's Redis database: each pytest-xdist worker has its own (tests/helpers/workers.py)."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for pattern in ("orweb:*", "chat:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    client.close()


@pytest.fixture
def catalog(db) -> None:
    """The simulator's bundled models in the catalog."""
    from tests.helpers.metering import load_catalog

    load_catalog()


@pytest.fixture
def team_group(db):
    from django.contrib.auth.models import Group

    return Group.objects.create(name="Team")


@pytest.fixture
def owner(team_group):
    """A member who owns things: conversations, attachments, presets, API keys, spend."""
    return person("olivia", group=team_group)


@pytest.fixture
def teammate(team_group):
    """Another member of the owner's group: shares the group's budget and models, not the owner's things."""
    return person("tomas", group=team_group)


@pytest.fixture
def outsider(db):
    """A member of a group the owner is not in."""
    from django.contrib.auth.models import Group

    return person("oscar", group=Group.objects.create(name="Elsewhere"))


@pytest.fixture
def staff(db):
    """Runs the place: sees everyone's spend and sets budgets, but not what members wrote."""
    return person("stella", is_staff=True)


@pytest.fixture
def owner_client(owner) -> Client:
    return signed_in(owner)


@pytest.fixture
def teammate_client(teammate) -> Client:
    return signed_in(teammate)


@pytest.fixture
def outsider_client(outsider) -> Client:
    return signed_in(outsider)


@pytest.fixture
def staff_client(staff) -> Client:
    return signed_in(staff)


@pytest.fixture
def superuser(db):
    """What Django's admin site needs to change rows (staff alone may only sign in there)."""
    return person("root", is_staff=True, is_superuser=True)


@pytest.fixture
def superuser_client(superuser) -> Client:
    return signed_in(superuser)


def _bound_socket() -> socket.socket:
    """A socket on a free port of 127.0.0.1 for uvicorn to serve on: bound here and kept, so no other
    process (another pytest-xdist worker's server) can take the port between its choice and its use."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[SimulatorServer]:
    from openrouter.simulator import SimulatorConfig, create_app

    app = create_app(SimulatorConfig(ttft=0.0, tps=0, generation_delay=0.2, keepalive_interval=0.2))
    sock = _bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.02)
    root = f"http://127.0.0.1:{port}"
    yield SimulatorServer(base_url=f"{root}/api/v1", root=root, app=app)
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def simulator(simulator_server: SimulatorServer, settings) -> SimulatorServer:
    """The simulator, reset, with the app's settings pointing at it."""
    simulator_server.reset()
    settings.OPENROUTER_BASE_URL = simulator_server.base_url
    settings.OPENROUTER_API_KEY = SIM_KEY
    return simulator_server


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Return pooled connections before the test database is dropped, so it can be."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            connection.close()
            if hasattr(connection, "close_pool"):
                connection.close_pool()


@dataclass
class LiveApp:
    """orweb's ASGI app (HTTP and websockets) served on a real local socket."""

    url: str
    ws_url: str


@pytest.fixture(scope="session")
def live_app_server() -> Iterator[LiveApp]:
    from orweb.asgi import application

    sock = _bound_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the app server did not start")
        time.sleep(0.02)
    yield LiveApp(url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def live_app(live_app_server: LiveApp, simulator: SimulatorServer, transactional_db, settings) -> LiveApp:
    """The app on a real socket, talking to the simulator, with a clean database for this test."""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    return live_app_server

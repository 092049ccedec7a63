"""PostgreSQL stopped while /v1 streams are finishing: each client still gets its whole reply, the usage
chunk and `[DONE]`; the charges wait in the web process's journal and reach the ledger, exactly, once the
database is back. The database here is a PostgreSQL server of the test's own, really stopped and started."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pgserver
import psycopg
import pytest
from pgserver import _commands

from orweb.devstack import ROOT
from tests.faults.conftest import WebProcess, server_env

MODEL = "openai/gpt-4o-mini"

SEED = """
from collections.abc import Iterator
from decimal import Decimal
from django.contrib.auth import get_user_model
from billing.budgets import set_budget
from billing.models import RateLimit
from gateway.keys import create_key
user = get_user_model().objects.create(username="ada")
set_budget(user=user, amount=Decimal("5"))
RateLimit.objects.create(user=user, concurrent_streams=10)
print(create_key(user, "script")[1])
"""


class OwnPostgres:
    """A PostgreSQL server in a directory of the test's, which it can stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = pgserver.get_server(directory, cleanup_mode="stop")
        self.server.psql("CREATE DATABASE orweb;")
        self.url = f"postgresql://postgres@/orweb?host={directory}"

    def stop(self) -> None:
        _commands.pg_ctl(["-m", "fast", "-w", "stop"], pgdata=self.directory, user=self.server.system_user, timeout=30)

    def start(self) -> None:
        log = self.directory / "restart.log"  # in the server's own directory: its user writes it
        _commands.pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {self.directory}", "-l", str(log), "start"],
            pgdata=self.directory,
            user=self.server.system_user,
            timeout=30,
        )

    def rows(self, query: str) -> list[tuple]:
        with psycopg.connect(f"host={self.directory} user=postgres dbname=orweb") as connection:
            return connection.execute(query).fetchall()


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    # Outside pytest's private temporary tree: run as root, pgserver runs the server as a user of its own,
    # who must reach the directory. A short path, too: the server's unix socket lives in it.
    directory = Path(tempfile.mkdtemp(prefix="orweb-pg-"))
    directory.chmod(0o755)
    database = OwnPostgres(directory / "data")
    yield database
    database.server.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


async def _stream(url: str, key: str, started: asyncio.Event) -> list[str]:
    body = {"model": MODEL, "stream": True, "max_tokens": 200, "messages": [{"role": "user", "content": "a story"}]}
    headers = {"Authorization": f"Bearer {key}"}
    lines = []
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                lines.append(line)
                started.set()
    return lines


def test_streams_finish_and_their_charges_survive_a_database_outage(own_postgres, simulator, settings, tmp_path):
    journal = tmp_path / "journal"
    env = server_env(simulator, settings, journal, DATABASE_URL=own_postgres.url, DB_POOL_TIMEOUT="2")
    _manage(env, "migrate", "-v", "0")
    _manage(env, "sync_models")
    key = _manage(env, "shell", "-c", SEED).strip().splitlines()[-1]
    simulator.configure(tps=20, reply_tokens=120)
    web = WebProcess(env)
    web.start()
    try:

        async def scenario() -> list[list[str]]:
            started = [asyncio.Event() for _ in range(4)]
            streams = [asyncio.create_task(_stream(web.url, key, event)) for event in started]
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), 30)
            await asyncio.to_thread(own_postgres.stop)
            return await asyncio.gather(*streams)

        replies = asyncio.run(scenario())
        assert all(reply[-1] == "data: [DONE]" for reply in replies)
        assert all('"usage"' in reply[-2] for reply in replies)
        own_postgres.start()

        billed = simulator.billed()
        assert len(billed) == 4
        deadline = time.monotonic() + 90
        while True:
            ledger = dict(own_postgres.rows("SELECT generation_id, cost FROM billing_ledgerentry"))
            open_holds = own_postgres.rows("SELECT count(*) FROM billing_hold WHERE released_at IS NULL")[0][0]
            if ledger.keys() == billed.keys() and not open_holds:
                break
            assert time.monotonic() < deadline, (ledger, billed, open_holds)
            time.sleep(0.5)
        assert all(ledger[generation] == Decimal(cost) for generation, cost in billed.items())
        [(spent, held)] = own_postgres.rows("SELECT spent, held FROM billing_budgetperiod")
        assert (spent, held) == (sum(ledger.values()), 0)
    finally:
        web.stop()

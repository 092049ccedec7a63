"""The whole suite on several pytest-xdist workers, each with a Redis database of its own.

A run that names no test paths (`make test`, `make test ARGS="-k gateway"`) goes to WORKERS worker processes
unless `-n` says otherwise (`-n 0`: one process). A run of some paths stays in one process: starting workers
(each creates and migrates a test database) costs more than a few tests take; `-n` parallelises one anyway.

Each worker has a test database of its own (pytest-django names it after the worker) but all share one
Redis server, and the ids that repeat across those databases name Redis keys: rate-limit counters, stream
slots, a reply's deltas, cached pages, Celery's queues. So worker gwN moves REDIS_URL (and
CELERY_BROKER_URL, when set) to the server's database N + 1, in its environment, before Django reads its
settings: its settings, and the web processes and Celery workers its tests start with that environment,
all use that database. (Pub/sub ignores the database: settings name it in the channel layer's prefix.)

This module is loaded with `-p` (pyproject's addopts), as a conftest would come too late: pytest-django
loads the settings before any conftest.
"""

from __future__ import annotations

import os
from collections.abc import Generator, MutableMapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

# Measured on the 2-core machine the suite targets: many tests wait on sockets, servers and a browser.
WORKERS = 3
# orweb.settings' REDIS_URL when the environment sets none.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def worker_number(name: str) -> int:
    """gw0 -> 0, gw12 -> 12 (the names pytest-xdist gives its workers)."""
    return int(name.removeprefix("gw"))


def redis_database_url(url: str, offset: int) -> str:
    """`url` moved `offset` databases past its own (`/db` in the path, or `?db=` for a unix socket)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if "db" in query or parts.scheme == "unix":
        query["db"] = str(int(query.get("db", 0)) + offset)
        return f"{url.partition('?')[0]}?{urlencode(query)}"
    database = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{database + offset}"))


def use_own_redis_database(environ: MutableMapping[str, str], worker: str) -> None:
    """Point this worker's REDIS_URL, and CELERY_BROKER_URL when set, at its own database."""
    offset = worker_number(worker) + 1
    environ["REDIS_URL"] = redis_database_url(environ.get("REDIS_URL") or DEFAULT_REDIS_URL, offset)
    if environ.get("CELERY_BROKER_URL"):
        environ["CELERY_BROKER_URL"] = redis_database_url(environ["CELERY_BROKER_URL"], offset)


def wants_workers(options: object) -> bool:
    """True for a run of no paths that sets no worker count, and that can run on workers (xdist loaded, no
    --pdb, not only collecting)."""
    return (
        getattr(options, "numprocesses", "") is None
        and not options.file_or_dir
        and not options.usepdb
        and not options.collectonly
    )


# A wrapper runs before every plain implementation, pytest-django's (which loads the settings) and
# pytest-cov's (which decides from the options whether this process gathers workers' coverage) included.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, object, object]:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        use_own_redis_database(os.environ, worker)
    elif wants_workers(early_config.known_args_namespace):
        # pytest parses this same list once more after this hook: the option counts as given.
        args += ["-n", str(WORKERS)]
        early_config.known_args_namespace.numprocesses = WORKERS
    return (yield)

"""`python -m orweb.serve` runs daphne on uvloop (the policy must be in place before daphne makes its loop)
with a small database thread pool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from concurrent import futures
pools = []
make_pool = futures.ThreadPoolExecutor.__init__
def record(self, max_workers=None, *args, **kwargs):
    if sys._getframe(1).f_globals["__name__"] == "daphne.server":
        pools.append(max_workers)
    make_pool(self, max_workers, *args, **kwargs)
futures.ThreadPoolExecutor.__init__ = record
sys.argv = ["orweb.serve", "--help"]
from orweb import serve
try:
    serve.main()
except SystemExit:
    pass
import daphne.server
print(type(daphne.server.twisted_loop).__module__, *pools)
"""


def _probe(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "ASGI_THREADS"} | env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_daphne_runs_its_reactor_on_uvloop_with_two_database_threads():
    assert _probe() == "uvloop 2"


def test_asgi_threads_still_sets_the_number_of_database_threads():
    assert _probe(ASGI_THREADS="8") == "uvloop 8"


def test_the_asgi_app_keeps_what_it_loaded_out_of_full_collections():
    probe = "import gc, orweb.asgi; print(gc.get_freeze_count())"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "orweb.settings"}
    env.setdefault("SECRET_KEY", "probe")
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) > 10_000

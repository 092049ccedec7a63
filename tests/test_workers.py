"""The whole suite on pytest-xdist workers (tests/helpers/workers.py): each worker's own Redis database,
whole runs spread over workers and runs of some paths kept in one process, and the whole-suite checks
(tests/helpers/suite_checks.py) made on the controller over every worker's coverage."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.workers import WORKERS, redis_database_url, use_own_redis_database


@pytest.mark.parametrize(
    ("url", "moved"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/3"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/3"),
        ("redis://:secret@redis.internal:6380/4", "redis://:secret@redis.internal:6380/7"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock?db=3"),
        ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=5"),
    ],
)
def test_a_url_moves_past_its_own_database(url, moved):
    assert redis_database_url(url, 3) == moved


def test_a_worker_takes_the_database_after_its_number_for_redis_and_the_broker():
    environ = {"REDIS_URL": "redis://127.0.0.1:6379/0", "CELERY_BROKER_URL": "redis://127.0.0.1:6390/0"}
    use_own_redis_database(environ, "gw1")

    assert environ == {"REDIS_URL": "redis://127.0.0.1:6379/2", "CELERY_BROKER_URL": "redis://127.0.0.1:6390/2"}


def test_without_redis_url_a_worker_moves_the_default():
    environ: dict[str, str] = {}
    use_own_redis_database(environ, "gw0")

    assert environ == {"REDIS_URL": "redis://127.0.0.1:6379/1"}


@pytest.mark.parametrize(("database", "prefix"), [("0", "asgi"), ("3", "asgi-db3")])
def test_the_channel_layer_prefix_names_the_redis_database(monkeypatch, tmp_path, database, prefix):
    """Pub/sub ignores the database, so two sites (or test workers) on one server share no group names."""
    monkeypatch.setenv("ORWEB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:6379/{database}")
    settings = runpy.run_path(str(Path(__file__).parents[1] / "orweb" / "settings.py"))

    assert settings["CHANNEL_LAYERS"]["default"]["CONFIG"]["prefix"] == prefix


LEDGER = """\
def debit(amount):
    return -amount


def credit(amount):
    return amount
"""

TEST = """\
import os
from pathlib import Path

import pytest

from ledger import {name}


@pytest.mark.parametrize("amount", range(4))
def test_{name}(amount):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
    Path("seen", f"{{worker}}-{name}-{{amount}}").write_text(os.environ.get("REDIS_URL", ""))
    assert abs({name}(amount)) == amount
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project whose "money code" (ledger.py) two test files cover, a function each."""
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [tool.pytest.ini_options]
        addopts = "-p tests.helpers.workers -p tests.helpers.suite_checks -p no:cacheprovider"
        testpaths = ["tests"]

        [tool.coverage.run]
        include = ["ledger.py"]
        """)
    )
    (tmp_path / "ledger.py").write_text(LEDGER)
    (tmp_path / "tests").mkdir()
    (tmp_path / "seen").mkdir()
    for name in ("debit", "credit"):
        (tmp_path / "tests" / f"test_{name}.py").write_text(TEST.format(name=name))
    return tmp_path


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in `project`, with coverage on as `make test` has it; this checkout's tests/ importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "COV_", "COVERAGE_"))}
    env.update(PYTHONPATH=str(Path(__file__).parents[1]), REDIS_URL="redis://127.0.0.1:6379/4")
    command = [sys.executable, "-m", "pytest", "--cov", "--cov-report=", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)


def seen(project: Path) -> dict[str, str]:
    """Each test's worker and the REDIS_URL it had."""
    return {path.name: path.read_text() for path in (project / "seen").iterdir()}


def test_a_whole_run_goes_to_workers_each_with_its_own_redis_database_and_is_checked_over_all(project):
    done = run_pytest(project)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"created: {WORKERS}/{WORKERS} workers" in done.stdout
    urls = {name.split("-")[0]: url for name, url in seen(project).items()}
    assert len(urls) > 1 and "none" not in urls
    assert urls == {worker: f"redis://127.0.0.1:6379/{4 + int(worker[2:]) + 1}" for worker in urls}
    assert "whole-suite checks failed" not in done.stdout


def test_a_money_line_no_worker_ran_fails_the_whole_run(project):
    (project / "ledger.py").write_text(LEDGER + "\n\ndef refund(amount):\n    return amount\n")

    done = run_pytest(project)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "created: " in done.stdout
    assert "money code not fully covered: ledger.py: 1 of 6 lines never run: 10" in done.stdout


def test_a_run_of_some_paths_stays_in_one_process_and_skips_the_checks(project):
    (project / "ledger.py").write_text(LEDGER + "\n\ndef refund(amount):\n    return amount\n")

    done = run_pytest(project, "tests/test_debit.py")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "created: " not in done.stdout and "whole-suite checks failed" not in done.stdout
    assert {name.split("-")[0] for name in seen(project)} == {"none"}
    assert set(seen(project).values()) == {"redis://127.0.0.1:6379/4"}

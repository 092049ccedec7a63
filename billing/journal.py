"""The attempts journal: an append-only file per process that records every upstream attempt before its
outcome is known, so no crash, database outage or deadlock can lose a charge OpenRouter made.

Each line is one JSON record about one attempt (a metered call): `open` (who, which hold and stream slot),
`gen` (a generation id, written the moment response headers name it), `owed` (outcomes the database could
not take yet) and `done` (settled in the ledger). The process holds an exclusive `flock` on its file while it
lives, so any other process can tell a dead process's journal by taking the lock, and replay it
(`billing.attempts.recover`).

Lines are written with one `write` each, straight to the kernel: they survive the process being killed at
once. They reach the disk with `fsync`, done by a background thread within `SYNC_INTERVAL` of the write (and
at once for `owed`, whose outcome exists nowhere else); a machine that loses power can lose that last
fraction of a second, and the daily books check (`billing.books`) still sees what that cost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ROTATE_BYTES = 4 * 1024 * 1024
SYNC_INTERVAL = 0.2


@dataclass
class Attempt:
    """What the journal knows of one attempt: its `open` record, the generations seen, outcomes owed."""

    id: str
    opened: dict[str, Any]
    generations: list[tuple[str, str]] = field(default_factory=list)
    owed: list[dict[str, Any]] | None = None


class Journal:
    """This process's journal file, locked for as long as the process lives."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.attempts: dict[str, Attempt] = {}
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._fd = -1
        self.path = directory / ""
        self._open_file()
        threading.Thread(target=self._sync_forever, name="orweb-journal-sync", daemon=True).start()

    def _open_file(self) -> None:
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd, self.path = fd, path

    def open(self, attempt_id: str, record: dict[str, Any]) -> None:
        """An attempt admitted: its hold and stream slot are now the journal's to give back if we die."""
        record = {"k": "open", "id": attempt_id, **record}
        with self._lock:
            self.attempts[attempt_id] = Attempt(attempt_id, record)
            self._write(record)

    def generation(self, attempt_id: str, generation_id: str, model: str) -> None:
        """A generation of the attempt exists upstream (and may be billed)."""
        with self._lock:
            attempt = self.attempts.get(attempt_id)
            if attempt is None or (generation_id, model) in attempt.generations:
                return
            attempt.generations.append((generation_id, model))
            self._write({"k": "gen", "id": attempt_id, "gen": generation_id, "model": model})

    def owe(self, attempt_id: str, outcomes: list[dict[str, Any]]) -> None:
        """Outcomes the ledger could not take now: kept (on disk, synced) until it can."""
        with self._lock:
            attempt = self.attempts.get(attempt_id)
            if attempt is None:
                return
            attempt.owed = outcomes
            self._write({"k": "owed", "id": attempt_id, "outcomes": outcomes})
            os.fsync(self._fd)

    def done(self, attempt_id: str) -> None:
        """The attempt is in the ledger: nothing of it is left to recover."""
        with self._lock:
            if self.attempts.pop(attempt_id, None) is None:
                return
            self._write({"k": "done", "id": attempt_id})
            if not self.attempts and os.fstat(self._fd).st_size > ROTATE_BYTES:
                self._rotate()

    def owing(self) -> list[Attempt]:
        """The attempts whose outcomes wait for the database."""
        with self._lock:
            return [attempt for attempt in self.attempts.values() if attempt.owed is not None]

    def _write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode())
        self._dirty.set()

    def _rotate(self) -> None:
        """Start a new file once nothing is open in this one; the old one goes (nothing in it is owed)."""
        old_fd, old_path = self._fd, self.path
        self._open_file()
        os.unlink(old_path)
        os.close(old_fd)

    def _sync_forever(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            threading.Event().wait(SYNC_INTERVAL)


def read(path: Path) -> dict[str, Attempt]:
    """The attempts of a journal file that are not done, from its records in order (a torn last line,
    written as the process died, is skipped)."""
    attempts: dict[str, Attempt] = {}
    with path.open("rb") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                logger.warning("Skipped an unreadable line of journal %s", path.name)
                continue
            attempt_id, kind = record.get("id"), record.get("k")
            if kind == "open":
                attempts[attempt_id] = Attempt(attempt_id, record)
            elif attempt_id not in attempts:
                continue
            elif kind == "gen":
                attempts[attempt_id].generations.append((record["gen"], record["model"]))
            elif kind == "owed":
                attempts[attempt_id].owed = record["outcomes"]
            elif kind == "done":
                del attempts[attempt_id]
    return attempts


@contextlib.contextmanager
def orphaned(directory: Path, own: Path | None) -> Iterator[list[Path]]:
    """The journal files of processes that are gone, locked for the caller while the block runs."""
    taken: list[tuple[int, Path]] = []
    try:
        for path in sorted(directory.glob("*.jsonl")) if directory.is_dir() else []:
            fd = None if path == own else lock_if_orphaned(path)
            if fd is not None:
                taken.append((fd, path))
        yield [path for _, path in taken]
    finally:
        for fd, _ in taken:
            os.close(fd)


def lock_if_orphaned(path: Path) -> int | None:
    """An open descriptor of `path` holding its lock, when no live process holds it; None when its process
    lives, or the file is gone (its process rotated it, or another recoverer finished it meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if path.exists():
            return fd
    except BlockingIOError:
        pass  # alive
    os.close(fd)
    return None

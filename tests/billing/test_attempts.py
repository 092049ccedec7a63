"""The attempts journal: what a process that dies leaves is settled by another, once, with its hold and
stream slot given back. The dying processes here are real ones, killed with SIGKILL mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import OperationalError

from billing import attempts, journal
from billing.budgets import set_budget
from billing.holds import place_hold
from billing.models import BudgetPeriod, DailyUsage, Hold, LedgerEntry
from billing.ratelimit import Limits, take
from orweb.devstack import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

A1 = "500509e1-0913-4ac3-846e-34d16ebc9f8e"
A2 = "48221470-28ef-4813-98d8-21bb4b4199f3"
A3 = "5a5fb8f0-d6ee-42d7-9381-a6130d07519d"
A4 = "a3b9b9f0-76d9-4a5b-9cb5-1cf98ce78cf8"
A5 = "53762618-6883-4937-8845-b47cc5df0619"
A6 = "2a64da76-a616-41c9-90de-388e5c9f7e35"
A7 = "ac1e4d45-6822-4b18-ad56-e2bc8bc1f2ca"
B1 = "7359c8d0-0ae5-4d5b-9932-5a88b00b4d1c"
B2 = "b329563d-e278-4fb6-a8ad-a5266105982d"
C1 = "7f767977-33c8-4cc9-83d4-0bf79618babc"

SLOTS = Limits(requests_per_minute=None, tokens_per_minute=None, concurrent_streams=2)


def _die_after(directory: Path, records: str) -> None:
    """A process that journals `records` (Python run with `j`, its Journal) and is then killed."""
    script = (
        textwrap.dedent(
            f"""
        import os, signal
        from pathlib import Path
        from billing.journal import Journal
        j = Journal(Path({str(directory)!r}))
        """
        )
        + textwrap.dedent(records)
        + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _slots(user_id: int) -> int:
    return redis.Redis.from_url(settings.REDIS_URL).zcard(f"orweb:streams:{user_id}")


@pytest.fixture
def held(owner):
    set_budget(user=owner, amount=Decimal("1"))
    hold = place_hold(owner, Decimal("0.2"))
    take(owner.pk, SLOTS, 10, "slot-1")
    return hold


def _opened(owner, hold) -> str:
    record = {"user": owner.pk, "source": "api", "key": None, "model": "openai/gpt-4o-mini"}
    return json.dumps({**record, "hold": str(hold.pk), "slot": "slot-1"})


def test_a_dead_process_that_saw_a_generation_leaves_an_estimated_row_and_gives_everything_back(tmp_path, owner, held):
    _die_after(
        tmp_path,
        f"""
        import json
        j.open({A1!r}, json.loads({_opened(owner, held)!r}))
        j.generation({A1!r}, "gen-seen-1", "openai/gpt-4o-mini")
        """,
    )
    assert _slots(owner.pk) == 1 and BudgetPeriod.objects.get().held == Decimal("0.2")

    assert attempts.recover(tmp_path) == 1

    entry = LedgerEntry.objects.get()
    assert (entry.generation_id, entry.status, entry.cost_source) == ("gen-seen-1", "incomplete", "estimated")
    assert str(entry.call_id) == A1 and entry.error == attempts.PROCESS_STOPPED
    assert Hold.objects.get().released_at is not None and BudgetPeriod.objects.get().held == 0
    assert _slots(owner.pk) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_dead_process_that_saw_nothing_leaves_a_zero_cancelled_row_with_the_reason(tmp_path, owner, held):
    _die_after(tmp_path, f"import json\nj.open({A2!r}, json.loads({_opened(owner, held)!r}))")

    assert attempts.recover(tmp_path) == 1

    entry = LedgerEntry.objects.get()
    assert (entry.generation_id, entry.status, entry.cost) == (None, "cancelled", 0)
    assert "before an answer" in entry.error
    assert BudgetPeriod.objects.get().held == 0


def test_outcomes_a_dead_process_owed_are_charged_as_they_were_reported(tmp_path, owner, held):
    outcome = {
        "user_id": owner.pk,
        "source": "api",
        "requested_model": "openai/gpt-4o-mini",
        "status": "ok",
        "cost": "0.0123456789",
        "cost_source": "reported",
        "generation_id": "gen-owed-1",
        "completion_tokens": 7,
        "call_id": "0b3a2c56-8f2e-4a36-9a59-8f2ad5c0c001",
        "hold": str(held.pk),
    }
    _die_after(
        tmp_path,
        f"""
        import json
        j.open({A3!r}, json.loads({_opened(owner, held)!r}))
        j.generation({A3!r}, "gen-owed-1", "openai/gpt-4o-mini")
        j.owe({A3!r}, [json.loads({json.dumps(outcome)!r})])
        """,
    )

    assert attempts.recover(tmp_path) == 1

    entry = LedgerEntry.objects.get()
    assert (entry.generation_id, entry.cost, entry.cost_source) == ("gen-owed-1", Decimal("0.0123456789"), "reported")
    period = BudgetPeriod.objects.get()
    assert (period.spent, period.held) == (Decimal("0.0123456789"), 0)
    assert DailyUsage.objects.get().cost == Decimal("0.0123456789")


def test_a_settled_attempt_is_not_settled_again_and_a_replay_twice_charges_once(tmp_path, owner, held):
    _die_after(
        tmp_path,
        f"""
        import json
        j.open({A4!r}, json.loads({_opened(owner, held)!r}))
        j.generation({A4!r}, "gen-twice", "openai/gpt-4o-mini")
        j.open({A5!r}, json.loads({_opened(owner, held)!r}))
        j.done({A5!r})
        """,
    )
    [path] = tmp_path.iterdir()
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(path.read_bytes())

    assert attempts.recover(tmp_path) == 2  # a4 from each file; a5 was done

    assert LedgerEntry.objects.count() == 1
    assert BudgetPeriod.objects.get().held == 0


def test_a_torn_last_line_is_skipped(tmp_path, owner, held):
    torn = b'{"k":"gen","id":"' + A6.encode() + b'","ge'
    _die_after(
        tmp_path, f"import json, os\nj.open({A6!r}, json.loads({_opened(owner, held)!r}))\nos.write(j._fd, {torn!r})"
    )
    assert attempts.recover(tmp_path) == 1
    assert LedgerEntry.objects.get().status == "cancelled"


def test_a_live_process_journal_is_left_alone(tmp_path, owner, held):
    script = f"""
import json, sys
from pathlib import Path
from billing.journal import Journal
j = Journal(Path({str(tmp_path)!r}))
j.open({A7!r}, json.loads({_opened(owner, held)!r}))
print("ready", flush=True)
sys.stdin.read()
"""
    live = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert live.stdout.readline().strip() == "ready"
        assert attempts.recover(tmp_path) == 0
        assert LedgerEntry.objects.count() == 0 and len(list(tmp_path.iterdir())) == 1
    finally:
        live.kill()
        live.wait()
    assert attempts.recover(tmp_path) == 1


def test_the_journal_starts_a_new_file_once_it_is_big_and_nothing_is_open(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "ROTATE_BYTES", 200)
    own = journal.Journal(tmp_path)
    first = own.path
    own.open(B1, {"user": 1, "filler": "x" * 300})
    own.open(B2, {"user": 1})
    own.done(B1)
    assert own.path == first  # b2 is still open: everything stays in one file
    own.done(B2)
    assert own.path != first and not first.exists() and own.path.exists()
    assert journal.read(own.path) == {}


def test_settling_owed_outcomes_of_this_process_writes_them_once(tmp_path, owner, held):
    own = journal.Journal(tmp_path)
    own.open(C1, {"user": owner.pk, "source": "api", "model": "m", "hold": str(held.pk), "slot": None})
    outcome = attempts.Outcome(
        user_id=owner.pk,
        source="api",
        requested_model="openai/gpt-4o-mini",
        status="ok",
        cost=Decimal("0.01"),
        cost_source="reported",
        generation_id="gen-c1",
    )
    own.owe(C1, [attempts._to_json(outcome, held.pk)])
    assert journal.read(own.path)[C1].owed is not None

    assert attempts.settle_owed(own) == 1
    assert attempts.settle_owed(own) == 0
    assert LedgerEntry.objects.get().cost == Decimal("0.01")
    assert BudgetPeriod.objects.get().held == 0
    assert journal.read(own.path) == {}
    os.close(own._fd)


def test_the_attempts_thread_keeps_live_slots_settles_owed_and_backs_off_while_the_database_is_away(
    tmp_path, owner, held, monkeypatch, caplog, settings
):
    settings.ORWEB_JOURNAL_DIR = str(tmp_path)
    own = attempts.journal()
    client = redis.Redis.from_url(settings.REDIS_URL)
    own.open(C1, {"user": owner.pk, "source": "api", "model": "m", "hold": str(held.pk), "slot": "slot-1"})
    [(_, before)] = client.zrange(f"orweb:streams:{owner.pk}", 0, -1, withscores=True)
    chores = attempts.Chores()

    attempts.do_chores(own, chores, now=100.0)
    [(_, renewed)] = client.zrange(f"orweb:streams:{owner.pk}", 0, -1, withscores=True)
    assert renewed >= before and chores.renew == 100.0 + attempts.SLOT_RENEW_EVERY

    outcome = attempts.Outcome(user_id=owner.pk, source="api", requested_model="m", status="ok", cost=Decimal("0.01"))
    own.owe(C1, [attempts._to_json(outcome, held.pk)])

    def database_away(journal):
        raise OperationalError("connection refused")

    monkeypatch.setattr(attempts, "settle_owed", database_away)
    attempts.do_chores(own, chores, now=101.0)
    attempts.do_chores(own, chores, now=101.0)  # not retried before its time
    assert (chores.wait, chores.settle) == (2 * attempts.LOOP_INTERVAL, 101.0 + 2 * attempts.LOOP_INTERVAL)
    assert LedgerEntry.objects.count() == 0

    monkeypatch.undo()
    attempts.do_chores(own, chores, now=200.0)
    assert LedgerEntry.objects.get().cost == Decimal("0.01") and chores.wait == attempts.LOOP_INTERVAL
    assert own.owing() == []

    monkeypatch.setattr(attempts, "recover", lambda: 1 / 0)
    attempts.do_chores(own, chores, now=300.0)
    assert "carries on" in caplog.text


def test_a_process_killed_between_journaling_and_placing_the_hold_leaves_nothing_broken(tmp_path, owner, caplog):
    opened = {"user": owner.pk, "source": "api", "key": None, "model": "m", "hold": str(uuid.uuid4()), "slot": None}
    _die_after(tmp_path, f"import json\nj.open({A2!r}, json.loads({json.dumps(opened)!r}))")

    assert attempts.recover(tmp_path) == 1

    entry = LedgerEntry.objects.get()
    assert (entry.status, entry.cost, entry.hold_id) == ("cancelled", 0, None)
    assert "can never be written" not in caplog.text


def test_the_journal_ignores_what_it_has_no_open_attempt_for(tmp_path):
    own = journal.Journal(tmp_path)
    own.open(B1, {"user": 1})
    own.generation(B1, "gen-1", "m")
    own.generation(B1, "gen-1", "m")  # the same generation twice (header, then first chunk): once
    own.generation(B2, "gen-2", "m")  # never opened (or already done): nothing to record
    own.owe(B2, [{"cost": "1"}])
    with open(own.path, "a") as stray:
        stray.write(json.dumps({"k": "gen", "id": "not-opened-here", "gen": "gen-3", "model": "m"}) + "\n")
    [attempt] = journal.read(own.path).values()
    assert attempt.generations == [("gen-1", "m")] and attempt.owed is None
    assert journal.lock_if_orphaned(tmp_path / "gone.jsonl") is None
    os.close(own._fd)


def test_a_charge_the_database_refuses_waits_in_the_journal_and_one_it_never_takes_is_dropped_loudly(
    tmp_path, owner, held, settings, caplog
):
    settings.ORWEB_JOURNAL_DIR = str(tmp_path)
    attempt = attempts.begin(
        user_id=owner.pk, source="api", api_key_id=None, requested_model="m", hold_id=held.pk, slot="slot-1"
    )
    broken = attempts.Outcome(user_id=owner.pk, source="api", requested_model="m", status="ok", cost=Decimal("-1"))

    assert attempts.settle_attempt(attempt, [broken], hold_id=held.pk, user_id=owner.pk, slot="slot-1") is None

    own = attempts.journal()
    assert [a.id for a in own.owing()] == [attempt] and _slots(owner.pk) == 0
    assert attempts.settle_owed(own) == 1
    assert "can never be written" in caplog.text and own.owing() == []
    assert LedgerEntry.objects.count() == 0


def test_a_deadlock_is_retried_and_any_other_error_is_not(owner, monkeypatch):
    outcome = attempts.Outcome(user_id=owner.pk, source="api", requested_model="m", status="ok", cost=Decimal(0))
    failures = [OperationalError("deadlock detected") for _ in range(attempts.DEADLOCK_TRIES - 1)]
    for failure in failures:
        failure.__cause__ = psycopg.errors.DeadlockDetected()
    real_settle = attempts.settle

    def settle_after_a_deadlock(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real_settle(*args, **kwargs)

    monkeypatch.setattr(attempts, "settle", settle_after_a_deadlock)
    [entry] = attempts._settle_all([outcome], None)  # every try but the last deadlocked
    assert entry.pk and failures == []

    monkeypatch.setattr(attempts, "settle", lambda *args, **kwargs: (_ for _ in ()).throw(OperationalError("gone")))
    with pytest.raises(OperationalError):
        attempts._settle_all([outcome], None)


def test_a_journal_that_cannot_be_replayed_yet_is_kept_for_the_next_try(tmp_path, owner, held, monkeypatch):
    _die_after(tmp_path, f"import json\nj.open({A3!r}, json.loads({_opened(owner, held)!r}))")

    def database_away(path):
        raise OperationalError("connection refused")

    monkeypatch.setattr(attempts, "_replay", database_away)
    assert attempts.recover(tmp_path) == 0
    assert len(list(tmp_path.iterdir())) == 1
    monkeypatch.undo()
    assert attempts.recover(tmp_path) == 1


def test_settling_a_call_again_returns_what_was_recorded(owner):
    outcome = attempts.Outcome(
        user_id=owner.pk, source="api", requested_model="m", status="cancelled", call_id=str(uuid.uuid4())
    )
    first = attempts.settle(outcome, hold_id=None)
    again = attempts.settle(outcome, hold_id=None)
    assert first.pk == again.pk and LedgerEntry.objects.count() == 1

"""Attempts: the life of every metered call between admission and the ledger, kept where a crash, an outage
or a deadlock can't lose it.

`begin` journals the attempt with its hold and stream slot as it is admitted; `saw_generation` journals each
generation id the moment response headers name it; `settle_attempt` writes the outcomes to the ledger
(retrying a deadlock a few times) and, if the database can't take them, keeps them in the journal and
answers anyway: the caller gets its reply, the charge is made durable behind it. A background thread of the
process retries what it owes, keeps its stream slots alive, and replays the journals of dead processes
(`recover`), which a worker's beat task and every process start do as well.

A dead process's attempts are settled from what its journal says: the outcomes it owed; else each
generation it saw, at $0 estimated and corrected from OpenRouter's `/generation` by reconciliation; else
(nothing came back before it died) a $0 cancelled row with the reason. Every hold is released with it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, close_old_connections, transaction

from billing import journal as journals
from billing.journal import Attempt, Journal
from billing.ledger import Outcome, settle
from billing.models import Hold, LedgerEntry
from billing.ratelimit import release_stream_slot, renew_stream_slots

logger = logging.getLogger(__name__)

DEADLOCK_TRIES = 5
LOOP_INTERVAL = 2.0
SLOT_RENEW_EVERY = 10.0
RECOVER_EVERY = 30.0
PROCESS_STOPPED = "the server handling the call stopped"

_journals: dict[tuple[int, str], Journal] = {}
_journals_lock = threading.Lock()


def journal() -> Journal:
    """This process's journal (a new one after a fork, or when the setting changes), with its thread."""
    key = (os.getpid(), str(settings.ORWEB_JOURNAL_DIR))
    found = _journals.get(key)
    if found is None:
        with _journals_lock:
            found = _journals.get(key)
            if found is None:
                found = _journals[key] = Journal(Path(key[1]))
                threading.Thread(target=_keep, args=(found,), name="orweb-attempts", daemon=True).start()
    return found


def begin(
    *, user_id: int, source: str, api_key_id: int | None, requested_model: str, hold_id: Any, slot: str | None
) -> str:
    """Journal an admitted attempt; its id becomes the ledger row's `call_id`."""
    attempt_id = str(uuid.uuid4())
    journal().open(
        attempt_id,
        {
            "user": user_id,
            "source": source,
            "key": api_key_id,
            "model": requested_model,
            "hold": str(hold_id) if hold_id else None,
            "slot": slot,
        },
    )
    return attempt_id


def forget(attempt_id: str) -> None:
    """An attempt refused before anything was spent (its hold never placed): nothing to recover."""
    journal().done(attempt_id)


def saw_generation(attempt_id: str, generation_id: str, model: str) -> None:
    """A generation of the attempt exists upstream: journal it before anything else happens."""
    journal().generation(attempt_id, generation_id, model)


def generations(attempt_id: str) -> list[tuple[str, str]]:
    """The (generation id, model) pairs seen for an attempt so far, in order."""
    attempt = journal().attempts.get(attempt_id)
    return list(attempt.generations) if attempt else []


def settle_attempt(
    attempt_id: str, outcomes: list[Outcome], *, hold_id: Any, user_id: int, slot: str | None
) -> list[LedgerEntry] | None:
    """Write the attempt's outcomes to the ledger and give back its slot; None when the database can't
    take them now (they wait in the journal, retried until it can)."""
    try:
        entries = _settle_all(outcomes, hold_id)
    except DatabaseError:
        logger.warning("Settling attempt %s failed; its charge waits in the journal", attempt_id, exc_info=True)
        journal().owe(attempt_id, [_to_json(outcome, hold_id) for outcome in outcomes])
        return None
    finally:
        if slot is not None:
            release_stream_slot(user_id, slot)
    journal().done(attempt_id)
    return entries


def _settle_all(outcomes: list[Outcome], hold_id: Any) -> list[LedgerEntry]:
    """Settle every outcome (in one transaction when there are several), retrying a deadlock or a
    serialization failure a few times: each retry rolls everything back first, and settling is
    idempotent per generation and per call."""
    for tried in range(1, DEADLOCK_TRIES):
        try:
            return _settle_once(outcomes, hold_id)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) not in ("40P01", "40001"):
                raise
            time.sleep(random.uniform(0, 0.02 * 2**tried))
    return _settle_once(outcomes, hold_id)


def _settle_once(outcomes: list[Outcome], hold_id: Any) -> list[LedgerEntry]:
    if len(outcomes) == 1:
        return [settle(outcomes[0], hold_id=hold_id)]
    with transaction.atomic():
        return [settle(outcome, hold_id=hold_id) for outcome in outcomes]


def settle_owed(own: Journal | None = None) -> int:
    """Retry this process's outcomes that wait for the database; how many attempts were settled."""
    own = own or journal()
    settled = 0
    for attempt in own.owing():
        assert attempt.owed is not None
        hold_id = attempt.owed[0].get("hold") if attempt.owed else None
        try:
            _settle_all([_from_json(data) for data in attempt.owed], hold_id)
        except IntegrityError:
            logger.exception("Attempt %s can never be written to the ledger; dropped", attempt.id)
        own.done(attempt.id)
        settled += 1
    return settled


def recover(directory: Path | None = None) -> int:
    """Settle every attempt left in the journals of dead processes, release their holds and stream slots,
    and remove those journals; how many attempts were settled. A journal that can't be finished now (the
    database is away) stays for the next try."""
    directory = directory or Path(settings.ORWEB_JOURNAL_DIR)
    own = journal().path if str(directory) == str(settings.ORWEB_JOURNAL_DIR) else None
    settled = 0
    with journals.orphaned(directory, own) as paths:
        for path in paths:
            try:
                settled += _replay(path)
            except DatabaseError:
                logger.warning("Could not replay journal %s yet", path.name, exc_info=True)
                continue
            path.unlink(missing_ok=True)
    if settled:
        logger.warning("Recovered %d attempts from the journals of stopped processes", settled)
    return settled


def _replay(path: Path) -> int:
    attempts = journals.read(path)
    for attempt in attempts.values():
        opened = attempt.opened
        # The attempt is journaled just before its hold is placed: a process that died in between left
        # an id with no hold behind it.
        hold_id = opened.get("hold")
        if hold_id and not Hold.objects.filter(pk=hold_id).exists():
            hold_id = None
        try:
            _settle_all(_dead_outcomes(attempt), hold_id)
        except IntegrityError:
            logger.exception("Attempt %s of journal %s can never be written to the ledger", attempt.id, path.name)
        if opened.get("slot"):
            release_stream_slot(opened["user"], opened["slot"])
    return len(attempts)


def _dead_outcomes(attempt: Attempt) -> list[Outcome]:
    """What to settle for an attempt whose process died before settling it."""
    if attempt.owed is not None:
        return [_from_json(data) for data in attempt.owed]
    opened = attempt.opened
    base = {
        "user_id": opened["user"],
        "source": opened["source"],
        "requested_model": opened["model"],
        "api_key_id": opened.get("key"),
    }
    if not attempt.generations:
        return [
            Outcome(
                **base,
                status=LedgerEntry.Status.CANCELLED,
                error=f"{PROCESS_STOPPED} before an answer",
                call_id=attempt.id,
            )
        ]
    *earlier, (last_id, last_model) = attempt.generations
    return [
        Outcome(
            **base,
            status=LedgerEntry.Status.INCOMPLETE,
            served_model=model,
            generation_id=generation_id,
            cost_source=LedgerEntry.CostSource.ESTIMATED,
            error=PROCESS_STOPPED,
            call_id=attempt.id if generation_id == last_id else None,
        )
        for generation_id, model in [*earlier, (last_id, last_model)]
    ]


def _to_json(outcome: Outcome, hold_id: Any) -> dict[str, Any]:
    data = dataclasses.asdict(outcome)
    data["cost"] = str(outcome.cost)
    data["hold"] = str(hold_id) if hold_id else None
    return data


def _from_json(data: dict[str, Any]) -> Outcome:
    fields = {name: value for name, value in data.items() if name != "hold"}
    fields["cost"] = Decimal(fields["cost"])
    return Outcome(**fields)


@dataclass
class Chores:
    """When the attempts thread next does each of its chores (`time.monotonic()` readings)."""

    renew: float = 0.0
    settle: float = 0.0
    recover: float = 0.0
    wait: float = LOOP_INTERVAL


def do_chores(own: Journal, chores: Chores, now: float) -> None:
    """One round of the attempts thread: keep the stream slots of live attempts from expiring, retry owed
    outcomes (waiting longer each time the database is still away), replay dead processes' journals."""
    try:
        if now >= chores.renew:
            chores.renew = now + SLOT_RENEW_EVERY
            renew_stream_slots(
                [(a.opened["user"], a.opened["slot"]) for a in list(own.attempts.values()) if a.opened.get("slot")]
            )
        if own.owing() and now >= chores.settle:
            settle_owed(own)
            chores.wait = LOOP_INTERVAL
        if now >= chores.recover:
            chores.recover = now + RECOVER_EVERY
            recover()
    except DatabaseError:
        logger.warning("The database is still away; owed charges wait in the journal")
        chores.wait = min(chores.wait * 2, 30.0)
        chores.settle = now + chores.wait
    except Exception:
        logger.exception("The attempts thread hit an error; it carries on")
    finally:
        close_old_connections()


def _keep(own: Journal) -> None:
    chores = Chores()
    while True:
        time.sleep(LOOP_INTERVAL)
        do_chores(own, chores, time.monotonic())

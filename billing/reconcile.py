"""Reconciliation: replace estimated costs with what OpenRouter billed, from GET /generation.

An estimated row comes from a stream that ended without usage (cancelled, or a provider that sent
none). OpenRouter answers 404 for a generation for a while after it ends, so a pending generation is
retried later, not treated as an error. Each row is corrected at most once: the row is locked and
must still be `estimated`, and the change of cost goes to the rollup and the budget periods in the
same transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from billing.ledger import correct
from billing.models import LedgerEntry
from openrouter import NotFound
from orweb.upstream import get_client

logger = logging.getLogger(__name__)

NEVER_BILLED_AFTER = dt.timedelta(days=1)


class GenerationPending(Exception):
    """OpenRouter doesn't know the generation yet (404): try again later."""


async def fetch_generation(generation_id: str) -> dict[str, Any] | None:
    """The billed record of a generation, or None while OpenRouter still answers 404."""
    try:
        return await get_client().generation(generation_id)
    except NotFound:
        return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() and result >= 0 else None


def apply_generation(entry_id: int, data: dict[str, Any]) -> bool:
    """Correct an estimated entry from a /generation record; False if there was nothing to do."""
    cost = _decimal(data.get("total_cost"))
    if cost is None:
        logger.warning("Generation record for ledger entry %s has no usable total_cost", entry_id)
        return False
    with transaction.atomic():
        entry = LedgerEntry.objects.select_for_update().filter(pk=entry_id).first()
        if entry is None or entry.cost_source != LedgerEntry.CostSource.ESTIMATED:
            return False
        prompt_tokens = int(data.get("tokens_prompt") or entry.prompt_tokens)
        completion_tokens = int(data.get("tokens_completion") or entry.completion_tokens)
        difference = correct(entry, cost=cost, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        entry.cost = cost
        entry.prompt_tokens = prompt_tokens
        entry.completion_tokens = completion_tokens
        entry.cost_source = LedgerEntry.CostSource.RECONCILED
        entry.save(update_fields=["cost", "prompt_tokens", "completion_tokens", "cost_source"])
    logger.info("Reconciled ledger entry %s: cost %s (%+f)", entry_id, cost, difference)
    return True


def reconcile_entry(entry_id: int) -> bool:
    """Fetch and apply the billed cost of one estimated entry; GenerationPending while it's a 404.

    A generation OpenRouter still doesn't know after NEVER_BILLED_AFTER was never billed (a try that
    failed before the provider started, say): its row is settled at $0, so the sweep, oldest first,
    doesn't stall on it."""
    entry = LedgerEntry.objects.filter(pk=entry_id, cost_source=LedgerEntry.CostSource.ESTIMATED).first()
    if entry is None or not entry.generation_id:
        return False
    data = async_to_sync(fetch_generation)(entry.generation_id)
    if data is None:
        if timezone.now() - entry.created < NEVER_BILLED_AFTER:
            raise GenerationPending(entry.generation_id)
        logger.warning("OpenRouter has no record of generation %s: settled at $0", entry.generation_id)
        data = {"total_cost": 0, "tokens_prompt": entry.prompt_tokens, "tokens_completion": entry.completion_tokens}
    return apply_generation(entry_id, data)


def reconcile_pending(*, settle_delay: dt.timedelta = dt.timedelta(seconds=5), limit: int = 200) -> int:
    """Try every estimated entry older than `settle_delay` (oldest first); how many were corrected."""
    ids = list(
        LedgerEntry.objects.filter(
            cost_source=LedgerEntry.CostSource.ESTIMATED,
            generation_id__isnull=False,
            created__lt=timezone.now() - settle_delay,
        )
        .order_by("created")
        .values_list("pk", flat=True)[:limit]
    )
    corrected = 0
    for entry_id in ids:
        try:
            corrected += reconcile_entry(entry_id)
        except GenerationPending:
            continue
    return corrected

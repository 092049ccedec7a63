"""Bring the catalog in line with OpenRouter's `/models`.

`sync_catalog` is the whole of the database side and needs no network: it inserts new models, updates
changed ones, writes a PriceChange whenever a price changes (and on first sight, so every model's price
history starts somewhere), marks models that left upstream as unavailable (never deletes: usage points
at them), and skips malformed entries with a logged reason. A sync that finds nothing changed writes
nothing at all, not even `last_synced`, which therefore means "the last time a sync changed this row".
`fetch_and_sync` / `sync_from_openrouter` fetch the list with the OpenRouter client first.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_UP, Decimal, InvalidOperation
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from catalog.models import PRICE, CatalogModel, PriceChange
from openrouter import OpenRouterClient

logger = logging.getLogger(__name__)

PRICE_FIELDS = (
    "prompt_price",
    "completion_price",
    "request_price",
    "image_price",
    "cache_read_price",
    "cache_write_price",
    "web_search_price",
)
DETAIL_FIELDS = (
    "canonical_slug",
    "name",
    "description",
    "context_length",
    "max_completion_tokens",
    "input_modalities",
    "output_modalities",
    "supported_parameters",
    "tokenizer",
    "expiration_date",
    "upstream_created",
    "raw",
)
_PRICE_KEYS = {
    "prompt_price": "prompt",
    "completion_price": "completion",
    "request_price": "request",
    "image_price": "image",
}
_PRICE_STEP = Decimal(1).scaleb(-PRICE["decimal_places"])
_PRICE_CEILING = Decimal(10) ** (PRICE["max_digits"] - PRICE["decimal_places"])
_MAX_INT = 2_147_483_647
_ID_LENGTH = CatalogModel._meta.get_field("id").max_length
# Any constant works: it only has to be the same in every process that syncs.
_SYNC_LOCK = zlib.crc32(b"orweb.catalog.sync")


class MalformedEntry(ValueError):
    """An upstream entry that can't be stored; the message is the reason, for the log and the report."""


@dataclass
class SyncReport:
    """What one sync did. `updated` counts every existing model that was written (including those
    `repriced` or `returned`); `removed` are the ones marked unavailable; `skipped` pairs an entry's id
    (or its position) with why it was skipped."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    repriced: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        return (
            f"added {len(self.added)}, updated {len(self.updated)}, repriced {len(self.repriced)}, "
            f"removed {len(self.removed)}, returned {len(self.returned)}, skipped {len(self.skipped)}"
        )


def sync_catalog(entries: Iterable[Any], *, now: datetime | None = None) -> SyncReport:
    """Apply one `/models` listing (its `data` list) to the catalog, in one transaction."""
    now = now or timezone.now()
    report = SyncReport()
    incoming = _parse_listing(entries, report)
    malformed_ids = [label for label, _ in report.skipped]

    with transaction.atomic():
        _take_sync_lock()
        existing = CatalogModel.objects.in_bulk(list(incoming))
        new_models: list[CatalogModel] = []
        changed_models: list[CatalogModel] = []
        price_changes: list[PriceChange] = []
        for model_id, values in incoming.items():
            model = existing.get(model_id)
            if model is None:
                model = CatalogModel(id=model_id, **values, last_synced=now)
                new_models.append(model)
                report.added.append(model_id)
                price_changes.append(_price_change(model, now))
                continue
            if model.price_set_by_admin:
                values = {k: v for k, v in values.items() if k not in PRICE_FIELDS}
            changes = {k: v for k, v in values.items() if getattr(model, k) != v}
            if not changes and model.is_available:
                continue
            for name, value in changes.items():
                setattr(model, name, value)
            if not model.is_available:
                model.is_available = True
                report.returned.append(model_id)
            model.last_synced = now
            changed_models.append(model)
            report.updated.append(model_id)
            if changes.keys() & set(PRICE_FIELDS):
                report.repriced.append(model_id)
                price_changes.append(_price_change(model, now))

        CatalogModel.objects.bulk_create(new_models)
        CatalogModel.objects.bulk_update(
            changed_models, [*DETAIL_FIELDS, *PRICE_FIELDS, "is_available", "last_synced"], batch_size=200
        )
        PriceChange.objects.bulk_create(price_changes)
        if incoming:
            vanished = CatalogModel.objects.filter(is_available=True).exclude(pk__in=[*incoming, *malformed_ids])
            report.removed = sorted(vanished.values_list("pk", flat=True))
            if report.removed:
                CatalogModel.objects.filter(pk__in=report.removed).update(is_available=False, last_synced=now)
        else:
            logger.warning("catalog sync: the listing had no usable model; nothing marked unavailable")
    if report.removed:
        logger.info("catalog sync: gone upstream, marked unavailable: %s", ", ".join(report.removed))
    return report


def _parse_listing(entries: Iterable[Any], report: SyncReport) -> dict[str, dict[str, Any]]:
    """Field values by model id; a malformed entry goes to `report.skipped` (and the log) instead."""
    incoming: dict[str, dict[str, Any]] = {}
    for position, entry in enumerate(entries):
        label = _label(entry, position)
        try:
            if label in incoming:
                raise MalformedEntry("the same id appears twice in the listing")
            incoming[label] = parse_entry(entry)
        except MalformedEntry as exc:
            logger.warning("catalog sync skipped %s: %s", label, exc)
            report.skipped.append((label, str(exc)))
    return incoming


def parse_entry(entry: Any) -> dict[str, Any]:
    """One upstream model object as CatalogModel field values, or MalformedEntry saying why not.

    Liberal where the meaning is clear (a missing price is 0, a missing name is the id), strict where
    storing the entry would mislead (no id, no pricing object, a non-numeric context length).
    """
    if not isinstance(entry, dict):
        raise MalformedEntry(f"expected an object, got {type(entry).__name__}")
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not model_id.strip():
        raise MalformedEntry("no id")
    if len(model_id) > _ID_LENGTH:
        raise MalformedEntry(f"id longer than {_ID_LENGTH} characters")
    pricing = entry.get("pricing")
    if not isinstance(pricing, dict):
        raise MalformedEntry("no pricing object")
    architecture = _object(entry, "architecture")
    top_provider = _object(entry, "top_provider")
    values: dict[str, Any] = {
        "canonical_slug": _text(entry, "canonical_slug")[:200],
        "name": (_text(entry, "name") or model_id)[:300],
        "description": _text(entry, "description"),
        "context_length": _count(entry, "context_length")
        if entry.get("context_length") is not None
        else _count(top_provider, "context_length"),
        "max_completion_tokens": _count(top_provider, "max_completion_tokens"),
        "input_modalities": _modalities(architecture, "input_modalities", 0),
        "output_modalities": _modalities(architecture, "output_modalities", 1),
        "supported_parameters": _strings(entry, "supported_parameters"),
        "tokenizer": _text(architecture, "tokenizer")[:100],
        "expiration_date": _date(entry.get("expiration_date")),
        "upstream_created": _timestamp(entry.get("created")),
        "raw": _plain_json(entry),
    }
    prices: dict[str, Decimal | None] = {name: parse_price(pricing.get(key, "0")) for name, key in _PRICE_KEYS.items()}
    # No cache price means no discount: cached tokens cost the prompt price (None), not nothing.
    prices["cache_read_price"] = parse_price(pricing.get("input_cache_read"))
    prices["cache_write_price"] = parse_price(pricing.get("input_cache_write"))
    prices["web_search_price"] = parse_price(pricing["web_search"]) if "web_search" in pricing else None
    if prices["request_price"] is None or prices["image_price"] is None:
        # These can't be stored as unknown on their own; a model whose cost can't be computed is
        # "price unknown" as a whole, so the gateway won't call it until an admin sets a price.
        prices.update(prompt_price=None, completion_price=None)
    prices["request_price"] = prices["request_price"] or Decimal(0)
    prices["image_price"] = prices["image_price"] or Decimal(0)
    values.update(prices)
    return values


def parse_price(value: Any) -> Decimal | None:
    """A USD-per-token price string as a Decimal; None ("unknown") if unparseable, negative or absurd.

    Rounded up to the column's 12 places, so an estimate built on it never undercharges.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0 or price >= _PRICE_CEILING:
        return None
    return price.quantize(_PRICE_STEP, rounding=ROUND_UP)


async def fetch_models() -> list[dict[str, Any]]:
    """The `/models` listing from the configured OpenRouter (or the simulator standing in for it), embedding
    models included."""
    async with OpenRouterClient(
        settings.OPENROUTER_API_KEY,
        settings.OPENROUTER_BASE_URL,
        app_url=settings.ORWEB_SITE_URL,
        app_title=settings.ORWEB_APP_TITLE,
    ) as client:
        return await client.models(output_modalities="all")


async def fetch_and_sync() -> SyncReport:
    """Fetch `/models` and apply it; for async callers."""
    entries = await fetch_models()
    # Not orweb.aio.db: the sync command and task reach here through async_to_sync, and the write belongs
    # on their own thread and connection (inside a caller's transaction), which thread_sensitive keeps.
    return await sync_to_async(sync_catalog)(entries)


def sync_from_openrouter() -> SyncReport:
    """Fetch `/models` and apply it; for the management command and the Celery task."""
    return async_to_sync(fetch_and_sync)()


def _take_sync_lock() -> None:
    """Serialise concurrent syncs (beat and a manual run) so they can't both insert the same model."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SYNC_LOCK])


def _price_change(model: CatalogModel, now: datetime) -> PriceChange:
    prices = {name: getattr(model, name) for name in PRICE_FIELDS}
    return PriceChange(model=model, source=PriceChange.Source.SYNC, effective_from=now, **prices)


def _label(entry: Any, position: int) -> str:
    model_id = entry.get("id") if isinstance(entry, dict) else None
    if isinstance(model_id, str) and model_id.strip():
        return model_id
    return f"entry #{position}"


def _object(entry: dict[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEntry(f"{key} is not an object")
    return value


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedEntry(f"{key} is not a string")
    return value


def _count(entry: dict[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise MalformedEntry(f"{key} is not a token count: {value!r}")
    return value


def _strings(entry: dict[str, Any], key: str) -> list[str]:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedEntry(f"{key} is not a list of strings")
    return value


def _modalities(architecture: dict[str, Any], key: str, side: int) -> list[str]:
    """The explicit list, or else the matching side of the older `"text+image->text"` string."""
    if architecture.get(key) is not None:
        return _strings(architecture, key)
    modality = architecture.get("modality")
    if isinstance(modality, str) and "->" in modality:
        return [part for part in modality.split("->")[side].split("+") if part]
    return ["text"] if side == 0 else []


def _date(value: Any) -> date | None:
    """An ISO date (or datetime) string; anything else is treated as "no date", not as malformed."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _plain_json(value: Any) -> Any:
    """The entry as storable JSON. The client parses JSON numbers as Decimal; `raw` is only kept for
    reference (prices are read from their strings above), so plain JSON numbers are exact enough."""
    if isinstance(value, dict):
        return {key: _plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_json(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

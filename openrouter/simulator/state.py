"""Everything one simulator instance knows: config, catalog, faults, generations, account usage, stats.

State lives on one object per app (``app.state.sim``), never in module globals, so every test gets
its own world and can change it with plain method calls (or the ``/_sim/*`` endpoints).

A generation is *in flight* from the moment its response is accepted until it is billed, once, when it
ends. ``reset()`` forgets the generations in flight, so one that ends later is not billed into the
next test's world.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from openrouter.simulator.faults import FaultSpec

CATALOG_PATH = Path(__file__).with_name("models.json")

# Provider shown in responses when a catalog entry doesn't name one.
_VENDOR_PROVIDERS = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "meta-llama": "Together",
    "mistralai": "Mistral",
    "deepseek": "DeepSeek",
    "qwen": "Alibaba",
    "x-ai": "xAI",
    "cohere": "Cohere",
}


@dataclass
class SimulatorConfig:
    """Knobs of one simulator. ``tps=0`` means "no pacing"; ``reply_tokens=None`` means 30–60."""

    keys: tuple[str, ...] | None = None
    ttft: float = 0.3
    tps: float = 80.0
    tokens_per_chunk: int = 1
    credit_limit: Decimal | None = None
    generation_delay: float = 0.5
    keepalive_interval: float = 1.0
    reply_tokens: int | None = None
    models: list[dict[str, Any]] | None = None
    batch_delay: float = 1.0  # seconds from a Batch API submission to its results (``batch_api``)

    @classmethod
    def from_env(cls, **overrides: Any) -> SimulatorConfig:
        """Defaults plus ``SIM_API_KEYS`` (comma-separated) from the environment."""
        keys = tuple(k.strip() for k in os.environ.get("SIM_API_KEYS", "").split(",") if k.strip())
        return cls(**{"keys": keys or None, **overrides})

    def updated(self, changes: dict[str, Any]) -> SimulatorConfig:
        """A copy with ``changes`` applied, validated; raises ValueError naming a bad key or value."""
        tunable = {f.name for f in dataclasses.fields(self)} - {"models"}
        unknown = set(changes) - tunable
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        values = dict(changes)
        if values.get("credit_limit") is not None:
            values["credit_limit"] = Decimal(str(values["credit_limit"]))
        if values.get("keys") is not None:
            values["keys"] = tuple(values["keys"])
        new = dataclasses.replace(self, **values)
        if new.ttft < 0 or new.tps < 0 or new.tokens_per_chunk < 1 or new.keepalive_interval <= 0:
            raise ValueError("ttft and tps must be >= 0, tokens_per_chunk >= 1, keepalive_interval > 0")
        if new.batch_delay < 0:
            raise ValueError("batch_delay must be >= 0")
        return new

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("models")
        if self.credit_limit is not None:
            data["credit_limit"] = float(self.credit_limit)
        return data


@dataclass
class Endpoint:
    """One provider serving a model, at its own prices (``/models`` shows the model's headline price)."""

    provider: str
    pricing: dict[str, Any]
    throughput: float

    def price(self, key: str) -> Decimal:
        """A per-token (per-request, per-image, per-search) price; a missing key means 0."""
        return Decimal(str(self.pricing.get(key, "0")))

    def has_price(self, key: str) -> bool:
        return key in self.pricing

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """Tokens at this endpoint's prices plus its per-request price (reasoning is billed as completion)."""
        return (
            prompt_tokens * self.price("prompt") + completion_tokens * self.price("completion") + self.price("request")
        )


@dataclass
class SimModel:
    """A catalog entry: the real ``/models`` object plus what the simulator needs to serve it: its provider
    endpoints (``endpoints``: provider, pricing, throughput; by default one, at the listed price)."""

    info: dict[str, Any]
    provider: str
    always_reasons: bool = False
    endpoints: list[Endpoint] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimModel:
        """Accept ``{"model": {...}, "provider"?, "always_reasons"?, "endpoints"?}`` or a bare model object."""
        info = data.get("model", data)
        if not isinstance(info, dict) or not isinstance(info.get("id"), str) or "pricing" not in info:
            raise ValueError("a model needs at least an id and pricing")
        vendor = info["id"].split("/", 1)[0]
        provider = data.get("provider") or _VENDOR_PROVIDERS.get(vendor, vendor.title())
        endpoints = [
            Endpoint(str(e["provider"]), dict(e.get("pricing") or info["pricing"]), float(e.get("throughput", 50)))
            for e in data.get("endpoints") or ()
        ] or [Endpoint(provider, info["pricing"], 50.0)]
        return cls(info=info, provider=provider, always_reasons=bool(data.get("always_reasons")), endpoints=endpoints)

    @property
    def id(self) -> str:
        return self.info["id"]

    def price(self, key: str) -> Decimal:
        """A per-token (or per-request) price; a missing key means 0."""
        return Decimal(str(self.info["pricing"].get(key, "0")))

    @property
    def input_modalities(self) -> list[str]:
        return (self.info.get("architecture") or {}).get("input_modalities") or []

    @property
    def output_modalities(self) -> list[str]:
        return (self.info.get("architecture") or {}).get("output_modalities") or ["text"]

    @property
    def is_embedding(self) -> bool:
        return "embeddings" in self.output_modalities

    @property
    def accepts_files(self) -> bool:
        return "file" in self.input_modalities

    @property
    def is_router(self) -> bool:
        return self.price("prompt") < 0

    @property
    def supported_parameters(self) -> list[str]:
        return self.info.get("supported_parameters") or []

    @property
    def accepts_images(self) -> bool:
        return "image" in (self.info.get("architecture") or {}).get("input_modalities", [])

    @property
    def context_length(self) -> int:
        return int(self.info.get("context_length") or 0)

    @property
    def max_completion_tokens(self) -> int | None:
        return (self.info.get("top_provider") or {}).get("max_completion_tokens")


@dataclass
class Generation:
    """One finished (or cancelled) generation, as ``GET /generation`` reports it."""

    id: str
    model: str
    provider: str
    streamed: bool
    created: float
    latency: float
    generation_time: float
    tokens_prompt: int
    tokens_completion: int
    tokens_reasoning: int
    cost: Decimal
    finish_reason: str | None
    native_finish_reason: str | None
    cancelled: bool
    ready_at: float
    tokens_cached: int = 0
    cache_discount: Decimal | None = None
    search_results: int | None = None
    media_prompt: int | None = None
    media_completion: int | None = None
    api_type: str = "completions"

    @property
    def day(self) -> date:
        """The UTC day it was billed on, which is what ``/key``'s daily, weekly and monthly usage count by."""
        return datetime.fromtimestamp(self.created, UTC).date()

    def billed_json(self) -> dict[str, Any]:
        """What ``/_sim/billed`` lists: the charge exactly, as a decimal string."""
        return {
            "id": self.id,
            "model": self.model,
            "provider": self.provider,
            "cost": format(self.cost, "f"),
            "tokens_prompt": self.tokens_prompt,
            "tokens_completion": self.tokens_completion,
            "cancelled": self.cancelled,
            "streamed": self.streamed,
            "finish_reason": self.finish_reason,
        }

    def as_json(self) -> dict[str, Any]:
        cost = float(self.cost)
        return {
            "id": self.id,
            "upstream_id": "chatcmpl-" + self.id.rsplit("-", 1)[-1],
            "total_cost": cost,
            "cache_discount": None if self.cache_discount is None else float(self.cache_discount),
            "upstream_inference_cost": None,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(self.created)),
            "model": self.model,
            "app_id": None,
            "streamed": self.streamed,
            "cancelled": self.cancelled,
            "provider_name": self.provider,
            "latency": round(self.latency * 1000),
            "moderation_latency": None,
            "generation_time": round(self.generation_time * 1000),
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.native_finish_reason,
            "tokens_prompt": self.tokens_prompt,
            "tokens_completion": self.tokens_completion,
            "native_tokens_prompt": self.tokens_prompt,
            "native_tokens_completion": self.tokens_completion,
            "native_tokens_reasoning": self.tokens_reasoning,
            "native_tokens_cached": self.tokens_cached,
            "num_media_prompt": self.media_prompt,
            "num_media_completion": self.media_completion,
            "num_search_results": self.search_results,
            "origin": "",
            "usage": cost,
            "is_byok": False,
            "api_type": self.api_type,
        }


def load_catalog(entries: list[dict[str, Any]] | None = None) -> list[SimModel]:
    """The bundled ``models.json`` (or the given entries) as SimModels."""
    if entries is None:
        entries = json.loads(CATALOG_PATH.read_text())
    return [SimModel.from_json(copy.deepcopy(e)) for e in entries]


@dataclass
class SimState:
    """The simulated world of one app. Methods are what the ``/_sim/*`` endpoints call."""

    initial: SimulatorConfig
    config: SimulatorConfig = field(init=False)
    models: dict[str, SimModel] = field(init=False)
    faults: dict[str, FaultSpec] = field(init=False)
    fail_counts: Counter[str] = field(init=False)
    generations: dict[str, Generation] = field(init=False)
    in_flight: dict[str, bool] = field(init=False)
    detached: set[asyncio.Task[Any]] = field(init=False)
    unattributed: list[tuple[date, Decimal]] = field(init=False)
    usage: Decimal = field(init=False)
    requests: Counter[str] = field(init=False)
    chat_requests: int = field(init=False)
    cancelled_streams: int = field(init=False)
    received: deque[dict[str, Any]] = field(init=False)
    cache: dict[tuple[str, str], float] = field(init=False)
    response_cache: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.detached = set()
        self.reset()

    def reset(self) -> None:
        """Back to the world the app was created with: config, catalog, no history, nothing in flight."""
        for task in list(self.detached):
            with contextlib.suppress(RuntimeError):  # its loop is closed: the task went with it
                task.get_loop().call_soon_threadsafe(task.cancel)
        self.detached = set()
        self.config = self.initial
        self.models = {m.id: m for m in load_catalog(self.initial.models)}
        self.faults = {}
        self.fail_counts = Counter()
        self.generations = {}
        self.in_flight = {}
        self.unattributed = []
        self.usage = Decimal(0)
        self.requests = Counter()
        self.chat_requests = 0
        self.cancelled_streams = 0
        self.received = deque(maxlen=200)
        self.cache = {}
        self.response_cache = set()

    @property
    def open_streams(self) -> int:
        """Streams whose response has started and whose generation is not billed yet."""
        return sum(self.in_flight.values())

    def update_config(self, **changes: Any) -> SimulatorConfig:
        self.config = self.config.updated(changes)
        return self.config

    def set_models(self, entries: list[dict[str, Any]]) -> None:
        """Replace the whole catalog."""
        self.models = {m.id: m for m in load_catalog(entries)}

    def upsert_model(self, entry: dict[str, Any]) -> SimModel:
        model = SimModel.from_json(copy.deepcopy(entry))
        self.models[model.id] = model
        return model

    def remove_model(self, model_id: str) -> bool:
        return self.models.pop(model_id, None) is not None

    def set_fault(self, model_id: str, spec: str) -> FaultSpec:
        self.faults[model_id] = FaultSpec.parse(spec)
        return self.faults[model_id]

    def clear_faults(self, model_id: str | None = None) -> None:
        if model_id is None:
            self.faults.clear()
        else:
            self.faults.pop(model_id, None)

    def begin(self, generation_id: str, *, streamed: bool) -> None:
        """A generation was accepted: it will be billed when it ends, whatever its client does."""
        self.in_flight[generation_id] = streamed

    def detach(self, task: asyncio.Task[Any]) -> None:
        """Keep a generation that runs apart from its request alive until it ends (or ``reset()``)."""
        self.detached.add(task)
        task.add_done_callback(self.detached.discard)

    def record(self, generation: Generation) -> None:
        """Bill and store a generation in flight; ``/generation`` shows it after ``generation_delay``.
        One begun before ``reset()`` is not billed: it belongs to a world that is gone."""
        if self.in_flight.pop(generation.id, None) is None:
            return
        self.generations[generation.id] = generation
        self.usage += generation.cost
        if generation.cancelled:
            self.cancelled_streams += 1

    def add_usage(self, amount: Decimal, day: date | None = None) -> None:
        """Usage of the key that no generation here accounts for (another app on the same key, say)."""
        self.unattributed.append((day or datetime.now(UTC).date(), amount))
        self.usage += amount

    def billed(self) -> list[dict[str, Any]]:
        """Every generation billed so far, at once (``/generation`` waits ``generation_delay``)."""
        return [generation.billed_json() for generation in self.generations.values()]

    def find_generation(self, generation_id: str) -> Generation | None:
        found = self.generations.get(generation_id)
        if found is None or time.monotonic() < found.ready_at:
            return None
        return found

    def remaining_credit(self) -> Decimal | None:
        limit = self.config.credit_limit
        return None if limit is None else limit - self.usage

    def period_usage(self, today: date) -> tuple[Decimal, Decimal, Decimal]:
        """Usage on ``today``, in its ISO week (from Monday) and in its month, all by UTC billing day."""
        charges = [(g.day, g.cost) for g in self.generations.values()] + self.unattributed
        week = today.isocalendar()[:2]
        daily = sum((cost for day, cost in charges if day == today), Decimal(0))
        weekly = sum((cost for day, cost in charges if day.isocalendar()[:2] == week), Decimal(0))
        monthly = sum((cost for day, cost in charges if (day.year, day.month) == (today.year, today.month)), Decimal(0))
        return daily, weekly, monthly

    def key_info(self, key: str) -> dict[str, Any]:
        limit = self.config.credit_limit
        remaining = self.remaining_credit()
        daily, weekly, monthly = self.period_usage(datetime.now(UTC).date())
        return {
            "label": f"{key[:11]}...{key[-3:]}",
            "limit": None if limit is None else float(limit),
            "limit_remaining": None if remaining is None else float(remaining),
            "limit_reset": None,
            "include_byok_in_limit": False,
            "usage": float(self.usage),
            "usage_daily": float(daily),
            "usage_weekly": float(weekly),
            "usage_monthly": float(monthly),
            "byok_usage": 0,
            "is_free_tier": False,
            "is_provisioning_key": False,
        }

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": self.chat_requests,
            "generations": len(self.generations),
            "in_flight": len(self.in_flight),
            "cancelled_streams": self.cancelled_streams,
            "open_streams": self.open_streams,
            "usage": float(self.usage),
            "faults": {model: str(spec) for model, spec in self.faults.items()},
        }

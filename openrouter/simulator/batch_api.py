"""OpenRouter's Batch API (beta): ``POST /api/beta/batches`` and ``GET /api/beta/batches/{id}``.

A batch names one text model (no image input, text output only) and up to ``MAX_REQUESTS`` chat
requests, each ``{custom_id, body}``. It answers 202 ``validating`` at once, is ``in_progress`` after a
quarter of the config's ``batch_delay`` and ``completed`` after all of it, with results inline per
``custom_id``: ``response.body`` a ``chat.completion`` (id = its generation id, usage with ``cost``), or an
``error``. Each answered request is billed at ``BATCH_RATE`` of the endpoint's list price, recorded like
any generation (``/generation``, ``/key``, ``/_sim/billed``); a request that fails is not billed.
A batch not done within its 24 h window would expire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openrouter.simulator.charges import Charges
from openrouter.simulator.chat import choose_model, parse_request
from openrouter.simulator.errors import SimError
from openrouter.simulator.serving import start_completion
from openrouter.simulator.state import SimModel, SimState

PATH = "/api/beta/batches"
ENDPOINT = "/v1/chat/completions"
BATCH_RATE = Decimal("0.5")
WINDOW = 24 * 3600
MAX_REQUESTS = 50_000


class BatchCharges(Charges):
    """A generation's charges at the Batch API's rate: every part of the list price times ``BATCH_RATE``."""

    def prompt_cost(self) -> Decimal:
        return super().prompt_cost() * BATCH_RATE

    def completion_cost(self, completion_tokens: int, images: int) -> Decimal:
        return super().completion_cost(completion_tokens, images) * BATCH_RATE

    def fees(self) -> Decimal:
        return super().fees() * BATCH_RATE


@dataclass
class SimBatch:
    """One submitted batch and, once completed, its results in the order the requests came."""

    model: str
    requests: list[tuple[str, dict[str, Any]]]
    id: str = field(default_factory=lambda: "batch_" + secrets.token_hex(12))
    created_at: int = field(default_factory=lambda: int(time.time()))
    status: str = "validating"
    in_progress_at: int | None = None
    completed_at: int | None = None
    results: list[dict[str, Any]] | None = None

    def as_json(self) -> dict[str, Any]:
        failed = sum(1 for r in self.results or () if r["error"] is not None)
        done = len(self.results or ())
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": ENDPOINT,
            "model": self.model,
            "status": self.status,
            "completion_window": "24h",
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "completed_at": self.completed_at,
            "expires_at": self.created_at + WINDOW,
            "request_counts": {"total": len(self.requests), "completed": done - failed, "failed": failed},
            "results": self.results,
        }


def batches_of(request: Request) -> dict[str, SimBatch]:
    """The app's batches (kept beside its ``SimState``; a batch still running at ``reset()`` is cancelled
    with the other detached work, and bills nothing)."""
    app_state = request.app.state
    if not hasattr(app_state, "batches"):
        app_state.batches = {}
    return app_state.batches


def is_batchable(model: SimModel) -> bool:
    """Text models only: no image input, text output only (not embeddings, not a router)."""
    return not model.accepts_images and model.output_modalities == ["text"] and not model.is_router


def parse_batch(state: SimState, body: Any) -> SimBatch:
    """The batch a POST asks for, or a SimError(400) naming what is wrong with it."""
    if not isinstance(body, dict):
        raise SimError(400, "Invalid JSON body: expected an object")
    if body.get("endpoint") != ENDPOINT:
        raise SimError(400, f'endpoint: expected "{ENDPOINT}"')
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise SimError(400, "model: required")
    model = state.models.get(model_id)
    if model is None:
        raise SimError(400, f"{model_id} is not a valid model ID")
    if not is_batchable(model):
        raise SimError(400, f"{model_id} is not available through the Batch API: text models only")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise SimError(400, "requests: expected a non-empty array")
    if len(requests) > MAX_REQUESTS:
        raise SimError(400, f"requests: at most {MAX_REQUESTS} per batch")
    parsed: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for index, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not custom_id:
            raise SimError(400, f"requests[{index}].custom_id: required")
        if custom_id in seen:
            raise SimError(400, f"requests[{index}].custom_id: {custom_id!r} is used twice")
        seen.add(custom_id)
        request_body = item.get("body")
        if not isinstance(request_body, dict):
            raise SimError(400, f"requests[{index}].body: expected an object")
        if request_body.get("stream"):
            raise SimError(400, f"requests[{index}].body.stream: a batch request can't stream")
        if request_body.get("model", model_id) != model_id:
            raise SimError(400, f"requests[{index}].body.model: must be the batch's model, {model_id}")
        parsed.append((custom_id, {**request_body, "model": model_id}))
    return SimBatch(model=model_id, requests=parsed)


async def answer(state: SimState, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request's result: its completion, billed at the batch rate, or its error, not billed."""
    try:
        chat = parse_request(body, None)
        chosen = choose_model(state, chat)
    except SimError as error:
        return {"custom_id": custom_id, "response": None, "error": error.body()["error"]}
    # A batch is answered whole: no pacing, and no mid-generation faults (they apply to live requests).
    quiet = dataclasses.replace(
        chosen.spec, ttft=0.0, tps=0.0, stall=None, error_after=None, drop_after=None, malformed_after=None
    )
    completion = start_completion(state, chat, dataclasses.replace(chosen, spec=quiet))
    listed = completion.charges
    completion.charges = BatchCharges(listed.endpoint, listed.prompt_tokens, listed.cache, listed.files, listed.search)
    generated = await completion.generate()
    reply = json.loads(generated or b"{}")
    return {
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": completion.id, "body": reply},
        "error": None,
    }


async def run(state: SimState, batch: SimBatch) -> None:
    """validating -> in_progress -> completed over the config's ``batch_delay``; results at the end."""
    delay = state.config.batch_delay
    await asyncio.sleep(delay / 4)
    batch.status, batch.in_progress_at = "in_progress", int(time.time())
    await asyncio.sleep(delay * 3 / 4)
    batch.results = [await answer(state, custom_id, body) for custom_id, body in batch.requests]
    batch.status, batch.completed_at = "completed", int(time.time())


def routes(authenticate: Callable[[Request], str]) -> list[Route]:
    """The Batch API's routes, checking the key as every other OpenRouter route does."""

    async def create_batch(request: Request) -> Response:
        authenticate(request)
        state: SimState = request.app.state.sim
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SimError(400, "Invalid JSON body") from exc
        batch = parse_batch(state, body)
        batches_of(request)[batch.id] = batch
        state.detach(asyncio.ensure_future(run(state, batch)))
        return JSONResponse(batch.as_json(), status_code=202)

    async def get_batch(request: Request) -> Response:
        authenticate(request)
        batch = batches_of(request).get(request.path_params["batch_id"])
        if batch is None:
            raise SimError(404, "Batch not found")
        return JSONResponse(batch.as_json())

    return [
        Route(PATH, create_batch, methods=["POST"]),
        Route(PATH + "/{batch_id}", get_batch, methods=["GET"]),
    ]

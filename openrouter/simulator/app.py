"""The ASGI app: OpenRouter's routes under ``/api/v1`` and test controls under ``/_sim``.

OpenRouter's routes: ``GET /models`` (``?output_modalities=``), ``GET /embeddings/models``,
``POST /chat/completions``, ``POST /embeddings``, ``POST /responses``, ``GET /generation``, ``GET /key``.
Control endpoints answer plain JSON (no ``data`` envelope, except ``billed``): ``PUT/POST /_sim/models``,
``DELETE /_sim/models/{id}``, ``GET/PATCH /_sim/config``, ``POST/DELETE /_sim/faults``,
``GET /_sim/stats``, ``GET /_sim/requests`` (the last 200 chat, embeddings and responses requests as
received), ``POST /_sim/reset``,
``GET /_sim/billed`` (every generation billed so far, at once: ``{"data": [...], "in_flight": n}``, what a
test compares its ledger with) and ``POST /_sim/usage {"amount": "0.5", "day"?: "YYYY-MM-DD"}`` (usage of
the key that no generation accounts for, as when another app shares the key: drift for the books check).

``create_app()`` builds an independent simulator; its state is ``app.state.sim`` (a ``SimState``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openrouter.simulator import batch_api
from openrouter.simulator.chat import choose_model, parse_request
from openrouter.simulator.embeddings import embed
from openrouter.simulator.errors import SimError
from openrouter.simulator.faults import FaultSpecError
from openrouter.simulator.response_cache import response_key
from openrouter.simulator.responses import EventStream, KeptAliveReply
from openrouter.simulator.responses_api import chat_body, respond, stream_events
from openrouter.simulator.serving import start_completion
from openrouter.simulator.state import SimState, SimulatorConfig


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    """A fresh simulator; without a config, defaults plus ``SIM_API_KEYS`` from the environment."""
    routes = [
        Route("/api/v1/models", list_models, methods=["GET"]),
        Route("/api/v1/embeddings/models", list_embedding_models, methods=["GET"]),
        Route("/api/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/api/v1/embeddings", embeddings, methods=["POST"]),
        Route("/api/v1/responses", responses, methods=["POST"]),
        Route("/api/v1/generation", get_generation, methods=["GET"]),
        Route("/api/v1/key", get_key, methods=["GET"]),
        *batch_api.routes(_authenticate),
        Route("/_sim/models", replace_models, methods=["PUT"]),
        Route("/_sim/models", upsert_model, methods=["POST"]),
        Route("/_sim/models/{model_id:path}", delete_model, methods=["DELETE"]),
        Route("/_sim/config", get_config, methods=["GET"]),
        Route("/_sim/config", patch_config, methods=["PATCH"]),
        Route("/_sim/faults", add_fault, methods=["POST"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/stats", get_stats, methods=["GET"]),
        Route("/_sim/requests", get_requests, methods=["GET"]),
        Route("/_sim/billed", get_billed, methods=["GET"]),
        Route("/_sim/usage", add_usage, methods=["POST"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            SimError: _sim_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.sim = SimState(config or SimulatorConfig.from_env())
    return app


def _state(request: Request) -> SimState:
    return request.app.state.sim


def _authenticate(request: Request) -> str:
    """Any ``sk-or-`` key, or only the configured ones; OpenRouter's 401 messages otherwise."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise SimError(401, "No auth credentials found")
    keys = _state(request).config.keys
    if (keys and key not in keys) or (not keys and not key.startswith("sk-or-")):
        raise SimError(401, "User not found.")
    return key


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SimError(400, "Invalid JSON body") from exc


async def _sleep(seconds: float | None) -> None:
    if seconds:
        await asyncio.sleep(seconds)


async def list_models(request: Request) -> Response:
    """Text-output models; ``?output_modalities=all`` (or a comma list such as ``image,embeddings``) widens it."""
    wanted = request.query_params.get("output_modalities", "text")
    kinds = None if wanted == "all" else set(wanted.split(","))
    models = _state(request).models.values()
    return JSONResponse({"data": [m.info for m in models if kinds is None or kinds & set(m.output_modalities)]})


async def list_embedding_models(request: Request) -> Response:
    return JSONResponse({"data": [m.info for m in _state(request).models.values() if m.is_embedding]})


async def _received(request: Request) -> Any:
    """The request's JSON body, recorded (without the key) for ``/_sim/requests``."""
    state = _state(request)
    _authenticate(request)
    body = await _json(request)
    headers = {k: v for k, v in request.headers.items() if k != "authorization"}
    state.received.append({"path": request.url.path, "headers": headers, "body": body})
    return body


async def chat_completions(request: Request) -> Response | EventStream | KeptAliveReply:
    """Errors found before generating answer their own status; after that the answer is a 200 whose
    ``X-Generation-Id`` names what will be billed. A client gone before then is never generated for."""
    state = _state(request)
    body = await _received(request)
    state.chat_requests += 1
    chat = parse_request(body, request.headers.get("x-sim-fault"))
    await _sleep(chat.spec.first_byte_delay)
    chosen = choose_model(state, chat)
    if chat.spec.first_byte_delay is None:
        await _sleep(chosen.spec.first_byte_delay)
    if await request.is_disconnected():
        return Response(status_code=499)
    completion = start_completion(state, chat, chosen, response_key(request, _authenticate(request), body))
    if chat.stream:
        return EventStream(completion.events(), completion.headers, completion.cancel)
    generation = asyncio.ensure_future(completion.generate())
    state.detach(generation)
    return KeptAliveReply(generation, completion.headers, state.config.keepalive_interval)


async def embeddings(request: Request) -> Response:
    state = _state(request)
    body = await _received(request)
    state.chat_requests += 1
    body, generation_id = embed(state, body)
    return JSONResponse(body, headers={"X-Generation-Id": generation_id})


async def responses(request: Request) -> Response | EventStream | KeptAliveReply:
    """The Responses API over the same generations as chat completions (see ``responses_api``)."""
    state = _state(request)
    body = await _received(request)
    state.chat_requests += 1
    chat = parse_request(chat_body(body), request.headers.get("x-sim-fault"))
    chosen = choose_model(state, chat)
    if await request.is_disconnected():
        return Response(status_code=499)
    completion = start_completion(state, chat, chosen, response_key(request, _authenticate(request), body))
    if chat.stream:
        return EventStream(stream_events(completion, body), completion.headers, completion.cancel)
    generation = asyncio.ensure_future(respond(completion, body))
    state.detach(generation)
    return KeptAliveReply(generation, completion.headers, state.config.keepalive_interval)


async def get_generation(request: Request) -> Response:
    _authenticate(request)
    generation_id = request.query_params.get("id")
    if not generation_id:
        raise SimError(400, "id: required")
    generation = _state(request).find_generation(generation_id)
    if generation is None:
        raise SimError(404, "Generation not found")
    return JSONResponse({"data": generation.as_json()})


async def get_key(request: Request) -> Response:
    key = _authenticate(request)
    return JSONResponse({"data": _state(request).key_info(key)})


async def replace_models(request: Request) -> Response:
    entries = await _json(request)
    if not isinstance(entries, list):
        raise SimError(400, "expected a list of models")
    try:
        _state(request).set_models(entries)
    except ValueError as exc:
        raise SimError(400, str(exc)) from exc
    return JSONResponse({"models": list(_state(request).models)})


async def upsert_model(request: Request) -> Response:
    entry = await _json(request)
    try:
        model = _state(request).upsert_model(entry if isinstance(entry, dict) else {})
    except ValueError as exc:
        raise SimError(400, str(exc)) from exc
    return JSONResponse(model.info)


async def delete_model(request: Request) -> Response:
    if not _state(request).remove_model(request.path_params["model_id"]):
        raise SimError(404, "No such model")
    return Response(status_code=204)


async def get_config(request: Request) -> Response:
    return JSONResponse(_state(request).config.as_json())


async def patch_config(request: Request) -> Response:
    changes = await _json(request)
    try:
        config = _state(request).update_config(**(changes if isinstance(changes, dict) else {}))
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise SimError(400, str(exc)) from exc
    return JSONResponse(config.as_json())


async def add_fault(request: Request) -> Response:
    data = await _json(request)
    if not isinstance(data, dict) or not isinstance(data.get("model"), str) or not isinstance(data.get("spec"), str):
        raise SimError(400, 'expected {"model": "<id>", "spec": "<fault spec>"}')
    try:
        _state(request).set_fault(data["model"], data["spec"])
    except FaultSpecError as exc:
        raise SimError(400, str(exc)) from exc
    return JSONResponse(_state(request).stats()["faults"])


async def clear_faults(request: Request) -> Response:
    _state(request).clear_faults(request.query_params.get("model"))
    return Response(status_code=204)


async def get_stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats())


async def get_requests(request: Request) -> Response:
    return JSONResponse(list(_state(request).received))


async def get_billed(request: Request) -> Response:
    state = _state(request)
    return JSONResponse({"data": state.billed(), "in_flight": len(state.in_flight)})


async def add_usage(request: Request) -> Response:
    data = await _json(request)
    try:
        amount = Decimal(str(data["amount"]))
        day = date.fromisoformat(data["day"]) if data.get("day") is not None else None
    except (TypeError, KeyError, ValueError, InvalidOperation) as exc:
        raise SimError(400, 'expected {"amount": "<USD>", "day"?: "YYYY-MM-DD"}') from exc
    if not amount.is_finite() or amount < 0:
        raise SimError(400, "amount: expected a non-negative number of USD")
    _state(request).add_usage(amount, day)
    return Response(status_code=204)


async def reset(request: Request) -> Response:
    _state(request).reset()
    return Response(status_code=204)


async def _sim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return SimError(exc.status_code, exc.detail).response()


async def _server_error(request: Request, exc: Exception) -> Response:
    return SimError(500, "Internal Server Error").response()

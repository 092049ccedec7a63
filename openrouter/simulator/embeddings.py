"""``POST /embeddings`` and ``GET /embeddings/models``: embedding models, which the plain ``/models`` list
leaves out (``/models?output_modalities=all`` includes them).

A vector is deterministic per model and input (unit length; ``dimensions`` shortens it), ``encoding_format:
"base64"`` packs it as little-endian float32. Billed like a generation: ``prompt_tokens`` at the model's
prompt price, with an id in ``X-Generation-Id``.
"""

from __future__ import annotations

import base64
import math
import random
import struct
import time
from typing import Any

from openrouter.simulator.delivery import native_finish, new_generation_id
from openrouter.simulator.errors import SimError
from openrouter.simulator.routing import check_provider, choose_endpoint
from openrouter.simulator.state import Generation, SimModel, SimState
from openrouter.simulator.textgen import count_prompt_tokens, seed_of

DEFAULT_DIMENSIONS = 1536
MAX_INPUTS = 2048


def _inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise SimError(400, "input: expected a string or a non-empty array of strings")
    if len(inputs) > MAX_INPUTS:
        raise SimError(400, f"input: at most {MAX_INPUTS} items")
    return inputs


def _vector(model_id: str, text: str, dimensions: int) -> list[float]:
    rng = random.Random(seed_of("embedding", model_id, text))
    raw = [rng.gauss(0, 1) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _model(state: SimState, body: dict[str, Any]) -> SimModel:
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise SimError(400, "model: required")
    model = state.models.get(model_id)
    if model is None:
        raise SimError(400, f"{model_id} is not a valid model ID")
    if not model.is_embedding:
        raise SimError(404, f"No endpoints found for {model_id} that support embeddings")
    return model


def embed(state: SimState, body: Any) -> tuple[dict[str, Any], str]:
    """The embeddings response and its generation id; the generation is billed at once."""
    if not isinstance(body, dict):
        raise SimError(400, "Invalid JSON body: expected an object")
    model = _model(state, body)
    inputs = _inputs(body)
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise SimError(400, "dimensions: expected an integer from 1 to 4096")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise SimError(400, "encoding_format: expected 'float' or 'base64'")
    endpoint = choose_endpoint(model, check_provider(body.get("provider")))
    state.requests[model.id] += 1
    prompt_tokens = sum(count_prompt_tokens([{"role": "user", "content": text}]) - 4 for text in inputs)
    cost = endpoint.cost(prompt_tokens, 0)
    generation_id = new_generation_id()
    data = []
    for index, text in enumerate(inputs):
        vector = _vector(model.id, text, dimensions)
        packed: Any = vector
        if encoding == "base64":
            packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "embedding": packed, "index": index})
    state.begin(generation_id, streamed=False)
    now = time.monotonic()
    state.record(
        Generation(
            id=generation_id,
            model=model.id,
            provider=endpoint.provider,
            streamed=False,
            created=time.time(),
            latency=0.0,
            generation_time=0.0,
            tokens_prompt=prompt_tokens,
            tokens_completion=0,
            tokens_reasoning=0,
            cost=cost,
            finish_reason=None,
            native_finish_reason=native_finish(model, None),
            cancelled=False,
            ready_at=now + state.config.generation_delay,
            api_type="embeddings",
        )
    )
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "cost": float(cost)}
    response = {"id": generation_id, "object": "list", "data": data, "model": model.id, "provider": endpoint.provider}
    return {**response, "usage": usage}, generation_id

"""Provider routing (`max_price` as a hard filter, `order`, `only`, `sort`, `:nitro`, `:floor`) billed at the
serving provider's prices; embeddings and the stateless Responses API, billed like any generation."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal

import pytest

from tests.helpers.simulator import chat

LLAMA = "meta-llama/llama-3.3-70b-instruct"  # Together (cheapest, slow), Fireworks, Groq (fastest)
PRICES = {
    "Together": (Decimal("0.00000013"), Decimal("0.00000039")),
    "Fireworks": (Decimal("0.0000009"), Decimal("0.0000009")),
    "Groq": (Decimal("0.00000059"), Decimal("0.00000079")),
}


async def _post(sim_client, path: str, body: dict, status: int = 200) -> dict:
    response = await sim_client.post(path, json=body)
    assert response.status_code == status, response.text
    return json.loads(response.text, parse_float=Decimal)


@pytest.mark.parametrize(
    ("model", "provider", "served"),
    [
        (LLAMA, None, "Together"),
        (LLAMA + ":nitro", None, "Groq"),
        (LLAMA + ":floor", None, "Together"),
        (LLAMA, {"sort": "throughput"}, "Groq"),
        (LLAMA, {"order": ["Fireworks"]}, "Fireworks"),
        (LLAMA, {"only": ["fireworks", "groq"]}, "Groq"),
        (LLAMA + ":nitro", {"max_price": {"prompt": 0.13, "completion": 0.39}}, "Together"),
        (LLAMA, {"order": ["Fireworks", "Groq"], "max_price": {"prompt": 0.6, "completion": 0.8}}, "Groq"),
    ],
)
async def test_routing_picks_the_provider_and_bills_its_prices(sim_client, sim, model, provider, served):
    body = chat("hi", model=model, **({"provider": provider} if provider else {}))
    reply = await _post(sim_client, "/chat/completions", body)
    assert reply["provider"] == served and reply["model"] == LLAMA
    usage = reply["usage"]
    prompt, completion = PRICES[served]
    assert usage["cost"] == usage["prompt_tokens"] * prompt + usage["completion_tokens"] * completion
    assert sim.generations[reply["id"]].provider == served


async def test_no_provider_within_max_price_is_a_404_and_nothing_is_billed(sim_client, sim):
    body = chat("hi", model=LLAMA, provider={"order": ["Groq"], "max_price": {"prompt": 0.1}})
    refused = await _post(sim_client, "/chat/completions", body, 404)
    assert "max_price" in refused["error"]["message"]
    fallback = {**body, "models": ["meta-llama/llama-3.1-8b-instruct"]}
    reply = await _post(sim_client, "/chat/completions", fallback)
    assert reply["model"] == "meta-llama/llama-3.1-8b-instruct"
    assert list(sim.generations) == [reply["id"]]
    await _post(sim_client, "/chat/completions", chat("hi", provider={"sort": "fastest"}), 400)


async def test_embeddings_are_deterministic_unit_vectors_billed_at_the_prompt_price(sim_client, sim):
    body = {"model": "openai/text-embedding-3-small", "input": ["alpha beta", "gamma"], "dimensions": 16}
    first = await _post(sim_client, "/embeddings", body)
    again = await _post(sim_client, "/embeddings", body)
    vectors = [item["embedding"] for item in first["data"]]
    assert [item["index"] for item in first["data"]] == [0, 1] and all(len(v) == 16 for v in vectors)
    assert vectors == [item["embedding"] for item in again["data"]]
    assert abs(sum(x * x for x in vectors[0]) - 1) < Decimal("1e-9")
    usage = first["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] > 0
    assert usage["cost"] == usage["prompt_tokens"] * Decimal("0.00000002") == sim.generations[first["id"]].cost
    packed = await _post(sim_client, "/embeddings", {**body, "input": "alpha beta", "encoding_format": "base64"})
    floats = struct.unpack("<16f", base64.b64decode(packed["data"][0]["embedding"]))
    assert [round(x, 5) for x in floats] == [round(float(x), 5) for x in vectors[0]]


async def test_embedding_models_are_listed_apart_and_refused_for_chat(sim_client):
    plain = {m["id"] for m in (await sim_client.get("/models")).json()["data"]}
    everything = {
        m["id"] for m in (await sim_client.get("/models", params={"output_modalities": "all"})).json()["data"]
    }
    embedding = {m["id"] for m in (await sim_client.get("/embeddings/models")).json()["data"]}
    assert "openai/text-embedding-3-small" in embedding and not embedding & plain
    assert everything == plain | embedding
    await _post(sim_client, "/chat/completions", chat("hi", model="openai/text-embedding-3-small"), 400)
    await _post(sim_client, "/embeddings", {"model": "openai/gpt-4o", "input": "hi"}, 404)
    await _post(sim_client, "/embeddings", {"model": "openai/text-embedding-3-small", "input": []}, 400)


async def test_a_response_is_the_same_generation_in_the_responses_shape(sim_client, sim):
    body = {
        "model": "openai/gpt-4o-mini",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "echo: hello"}]}],
    }
    response = await _post(sim_client, "/responses", body)
    assert response["object"] == "response" and response["status"] == "completed"
    [message] = response["output"]
    assert message["type"] == "message" and message["content"][0] == {
        "type": "output_text",
        "text": "hello",
        "annotations": [],
    }
    usage = response["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] == usage["total_tokens"] - usage["input_tokens"] > 0
    assert usage["cost"] == sim.generations[response["id"]].cost


async def test_a_streamed_response_tells_its_events_and_ends_completed_with_usage(sim_client, sim):
    body = {"model": "anthropic/claude-sonnet-4", "input": "why?", "reasoning": {"effort": "low"}, "stream": True}
    text = (await sim_client.post("/responses", json=body)).text
    events = [json.loads(line[6:], parse_float=Decimal) for line in text.splitlines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.reasoning.delta" in kinds and "response.output_text.delta" in kinds
    completed = events[-1]["response"]
    done = [e["item"]["type"] for e in events if e["type"] == "response.output_item.done"]
    assert done == ["reasoning", "message"]
    assert completed["output"][1]["content"][0]["text"] == "".join(
        e["delta"] for e in events if e["type"] == "response.output_text.delta"
    )
    assert completed["usage"]["cost"] == sim.generations[completed["id"]].cost
    assert completed["usage"]["output_tokens_details"]["reasoning_tokens"] > 0


async def test_a_failed_stream_ends_with_response_failed(sim_client):
    body = {"model": "openai/gpt-4o-mini", "input": "hello [[sim error_after=2]]", "stream": True}
    text = (await sim_client.post("/responses", json=body)).text
    assert text.rstrip().splitlines()[-1].startswith('data: {"type":"response.failed"')


@pytest.mark.parametrize("field", [{"store": True}, {"previous_response_id": "resp_1"}, {"input": []}])
async def test_stateful_or_empty_responses_are_refused(sim_client, field):
    await _post(sim_client, "/responses", {"model": "openai/gpt-4o-mini", "input": "hi", **field}, 400)

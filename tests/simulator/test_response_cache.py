"""Response caching (``X-OpenRouter-Cache: true``): an identical request that succeeded before is answered
again as a new generation with every usage counter 0 and billed nothing; only successes are kept, and a
different body, key or streaming mode, or a request without the header, is generated and billed as usual."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.helpers.simulator import Stream, chat

CACHE = {"X-OpenRouter-Cache": "true"}
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0}


async def _post(sim_client, body: dict, headers: dict | None = None):
    response = await sim_client.post("/chat/completions", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    return response


async def _billed(control) -> dict[str, dict]:
    return {g["id"]: g for g in (await control.get("/billed")).json()["data"]}


async def test_an_identical_request_is_answered_from_the_cache_at_no_cost(sim_client, control):
    body = chat("tell me about tea", tools=[{"type": "openrouter:web_search", "max_results": 2}])
    first = await _post(sim_client, body, CACHE)
    again = await _post(sim_client, body, CACHE)
    assert again.headers["x-generation-id"] != first.headers["x-generation-id"]
    original, replayed = first.json(), again.json()
    assert replayed["id"] == again.headers["x-generation-id"]
    assert replayed["choices"][0]["message"] == original["choices"][0]["message"]  # citations included
    assert {k: replayed["usage"][k] for k in ZERO_USAGE} == ZERO_USAGE
    assert original["usage"]["cost"] > 0
    billed = await _billed(control)
    assert billed[again.headers["x-generation-id"]]["cost"] == "0"
    assert billed[again.headers["x-generation-id"]]["tokens_completion"] == 0
    usage = Decimal(str((await sim_client.get("/key")).json()["data"]["usage"]))
    assert usage == Decimal(billed[first.headers["x-generation-id"]]["cost"])


async def test_a_streamed_request_replays_the_same_chunks_with_zero_usage(sim_client, control):
    body = chat("echo: one two three", stream=True)
    first = Stream.parse((await _post(sim_client, body, CACHE)).text)
    again = await _post(sim_client, body, CACHE)
    replayed = Stream.parse(again.text)
    assert replayed.content == first.content == "one two three"
    assert {k: replayed.usage[k] for k in ZERO_USAGE} == ZERO_USAGE
    assert (await _billed(control))[again.headers["x-generation-id"]]["cost"] == "0"


@pytest.mark.parametrize(
    "second",
    [
        {"headers": {}},  # no header: not read from the cache
        {"body": {"max_tokens": 199}},  # another body
        {"body": {"stream": True}},  # another streaming mode
        {"headers": {**CACHE, "Authorization": "Bearer sk-or-v1-another-key"}},  # another key
    ],
    ids=["no-header", "other-body", "streamed", "other-key"],
)
async def test_anything_but_an_identical_cached_request_is_billed(sim_client, control, second):
    body = chat("echo: hello there")
    await _post(sim_client, body, CACHE)
    other = await _post(sim_client, {**body, **second.get("body", {})}, second.get("headers", CACHE))
    assert Decimal((await _billed(control))[other.headers["x-generation-id"]]["cost"]) > 0


async def test_a_failed_answer_is_never_cached(sim_client, control):
    body = chat("tell me more [[sim error_after=3]]", stream=True)
    await _post(sim_client, body, CACHE)
    again = await _post(sim_client, body, CACHE)
    [chunk] = [c for c in Stream.parse(again.text).chunks if "error" in c]  # generated (and failed) again
    assert chunk["choices"][0]["finish_reason"] == "error"
    listed = (await _billed(control))[again.headers["x-generation-id"]]
    assert (listed["finish_reason"], listed["tokens_completion"]) == ("error", 3)


async def test_reset_empties_the_response_cache(sim_client, control):
    body = chat("echo: hello there")
    await _post(sim_client, body, CACHE)
    assert (await control.post("/reset")).status_code == 204
    again = await _post(sim_client, body, CACHE)
    assert json.loads(again.text)["usage"]["completion_tokens"] > 0

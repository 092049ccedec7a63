"""Prompt caching: explicit `cache_control` breakpoints write then read (priced at input_cache_write, twice the
prompt price for an hour, input_cache_read), automatic caching reads a repeated prefix, short prefixes are
never cached, and /generation reports the cached tokens and the discount."""

from __future__ import annotations

import json
from decimal import Decimal

HAIKU = "anthropic/claude-3.5-haiku"
PROMPT, READ, WRITE, COMPLETION = (Decimal(p) for p in ("0.0000008", "0.00000008", "0.000001", "0.000004"))
LONG = "word " * 1200


def _cached(ttl: str | None = None) -> dict:
    mark = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    system = {"role": "system", "content": [{"type": "text", "text": LONG, "cache_control": mark}]}
    return {"model": HAIKU, "messages": [system, {"role": "user", "content": "hi"}], "max_tokens": 50}


async def _usage(sim_client, body: dict) -> dict:
    response = await sim_client.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)["usage"]


def _cost(usage: dict, write_price: Decimal) -> Decimal:
    details = usage["prompt_tokens_details"]
    plain = usage["prompt_tokens"] - details["cached_tokens"] - details["cache_write_tokens"]
    return (
        plain * PROMPT
        + details["cached_tokens"] * READ
        + details["cache_write_tokens"] * write_price
        + usage["completion_tokens"] * COMPLETION
    )


async def test_a_breakpoint_is_written_once_then_read(sim_client, sim):
    written = await _usage(sim_client, _cached())
    read = await _usage(sim_client, _cached())
    assert written["prompt_tokens_details"]["cache_write_tokens"] > 1024
    assert written["prompt_tokens_details"]["cached_tokens"] == 0
    assert read["prompt_tokens_details"]["cached_tokens"] == written["prompt_tokens_details"]["cache_write_tokens"]
    assert written["cost"] == _cost(written, WRITE) and read["cost"] == _cost(read, WRITE)
    assert read["cost"] < written["cost"]
    [first, second] = sim.generations.values()
    assert second.tokens_cached == read["prompt_tokens_details"]["cached_tokens"]
    assert second.cache_discount > 0 > first.cache_discount


async def test_an_hour_long_write_costs_twice_the_prompt_price(sim_client):
    usage = await _usage(sim_client, _cached("1h"))
    assert usage["cost"] == _cost(usage, PROMPT * 2)


async def test_a_short_prefix_and_a_provider_without_cache_writes_are_not_cached(sim_client):
    short = _cached()
    short["messages"][0]["content"][0]["text"] = "brief"
    assert (await _usage(sim_client, short))["prompt_tokens_details"]["cache_write_tokens"] == 0
    plain = {**_cached(), "model": "meta-llama/llama-3.1-8b-instruct"}
    assert (await _usage(sim_client, plain))["prompt_tokens_details"] == {
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "audio_tokens": 0,
    }


async def test_too_many_breakpoints_are_refused(sim_client):
    parts = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}} for _ in range(5)]
    body = {"model": HAIKU, "messages": [{"role": "user", "content": parts}]}
    response = await sim_client.post("/chat/completions", json=body)
    assert response.status_code == 400 and "maximum of 4" in response.json()["error"]["message"]


async def test_openai_caches_a_repeated_prefix_by_itself_at_the_read_price(sim_client):
    history = [{"role": "system", "content": LONG}, {"role": "user", "content": "first"}]
    body = {"model": "openai/gpt-4o-mini", "messages": history, "max_tokens": 20}
    first = await _usage(sim_client, body)
    again = await _usage(sim_client, {**body, "messages": [*history[:1], {"role": "user", "content": "second"}]})
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    cached = again["prompt_tokens_details"]["cached_tokens"]
    assert cached > 1024 and cached % 128 == 0 and again["prompt_tokens_details"]["cache_write_tokens"] == 0
    expected = (again["prompt_tokens"] - cached) * Decimal("0.00000015") + cached * Decimal("0.000000075")
    assert again["cost"] == expected + again["completion_tokens"] * Decimal("0.0000006")

"""Reasoning as OpenRouter serves it: the `reasoning` object sets how much (effort, max_tokens) and whether it
is shown (exclude), `reasoning_details` come in the provider's format, reasoning is billed as output, and
Anthropic refuses thinking sent back changed."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.helpers.simulator import Stream, chat

SONNET = "anthropic/claude-sonnet-4"


async def _post(sim_client, body: dict) -> dict:
    response = await sim_client.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


async def test_effort_sets_how_long_it_thinks_and_the_tokens_are_billed_as_output(sim_client):
    low = await _post(sim_client, chat("why?", model=SONNET, reasoning={"effort": "low"}, max_tokens=2000))
    high = await _post(sim_client, chat("why?", model=SONNET, reasoning={"effort": "high"}, max_tokens=2000))
    thought = {r["usage"]["completion_tokens_details"]["reasoning_tokens"]: r for r in (low, high)}
    assert len(thought) == 2 and min(thought) > 0 and thought[max(thought)] is high
    for reply in (low, high):
        usage = reply["usage"]
        assert usage["completion_tokens"] > usage["completion_tokens_details"]["reasoning_tokens"]
        assert usage["cost"] == usage["prompt_tokens"] * Decimal("0.000003") + usage["completion_tokens"] * Decimal(
            "0.000015"
        )


async def test_reasoning_max_tokens_caps_it_and_none_turns_it_off(sim_client):
    capped = await _post(sim_client, chat("why?", model=SONNET, reasoning={"effort": "high", "max_tokens": 5}))
    assert capped["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5
    off = await _post(sim_client, chat("why?", model=SONNET, reasoning={"effort": "none"}))
    assert off["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    assert off["choices"][0]["message"]["reasoning"] is None


async def test_exclude_hides_the_reasoning_but_still_bills_it(sim_client):
    shown = await _post(sim_client, chat("why?", model=SONNET, reasoning={"effort": "low"}))
    hidden = await _post(sim_client, chat("why?", model=SONNET, reasoning={"effort": "low", "exclude": True}))
    message = hidden["choices"][0]["message"]
    assert message["reasoning"] is None and "reasoning_details" not in message
    assert hidden["usage"]["completion_tokens_details"] == shown["usage"]["completion_tokens_details"]
    assert hidden["usage"]["cost"] == shown["usage"]["cost"]
    response = await sim_client.post(
        "/chat/completions", json=chat("why?", model=SONNET, reasoning={"effort": "low", "exclude": True}, stream=True)
    )
    streamed = Stream.parse(response.text)
    assert not any("reasoning" in c["choices"][0]["delta"] for c in streamed.chunks if c.get("choices"))
    assert streamed.usage["completion_tokens_details"]["reasoning_tokens"] > 0


async def test_details_come_in_each_providers_format(sim_client):
    anthropic = (await _post(sim_client, chat("why?", model=SONNET, reasoning={"effort": "low"})))["choices"][0][
        "message"
    ]
    [signed] = anthropic["reasoning_details"]
    assert signed["type"] == "reasoning.text" and signed["text"] == anthropic["reasoning"] and signed["signature"]
    assert signed["format"] == "anthropic-claude-v1"
    openai = await _post(sim_client, chat("why?", model="openai/o3-mini", reasoning={"effort": "low"}))
    summary, encrypted = openai["choices"][0]["message"]["reasoning_details"]
    assert summary["type"] == "reasoning.summary" and summary["summary"] == openai["choices"][0]["message"]["reasoning"]
    assert encrypted["type"] == "reasoning.encrypted" and encrypted["data"]


async def test_a_stream_carries_details_with_each_piece_and_the_signature_last(sim_client):
    response = await sim_client.post(
        "/chat/completions", json=chat("why?", model=SONNET, reasoning={"effort": "low"}, stream=True)
    )
    deltas = [c["choices"][0]["delta"] for c in Stream.parse(response.text).chunks if c.get("choices")]
    pieces = [d for d in deltas if d.get("reasoning")]
    assert all(d["reasoning_details"][0]["text"] == d["reasoning"] for d in pieces)
    sealed = [d for d in deltas if d.get("reasoning_details") and not d.get("reasoning")]
    assert len(sealed) == 1 and sealed[0]["reasoning_details"][0]["signature"]


async def test_thinking_sent_back_unchanged_is_accepted_and_changed_is_refused(sim_client):
    first = await _post(sim_client, chat("why?", model=SONNET, reasoning={"effort": "low"}))
    message = first["choices"][0]["message"]
    turn = {"role": "assistant", "content": message["content"], "reasoning_details": message["reasoning_details"]}
    body = {
        "model": SONNET,
        "messages": [{"role": "user", "content": "why?"}, turn, {"role": "user", "content": "and?"}],
    }
    assert (await sim_client.post("/chat/completions", json=body)).status_code == 200
    tampered = [{**message["reasoning_details"][0], "text": message["reasoning"] + " (edited)"}]
    body["messages"][1] = {**turn, "reasoning_details": tampered}
    refused = await sim_client.post("/chat/completions", json=body)
    assert refused.status_code == 400 and "signature" in refused.json()["error"]["message"]

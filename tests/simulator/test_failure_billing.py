"""What a failed generation is billed, as OpenRouter documents it: nothing for one that ends in an error or
with no completion token and a blank finish reason, bar the search and OCR fees it ran up; ``/_sim/billed``,
``/generation`` and ``/key`` all agree."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from openrouter.fees import OCR_PAGE, exa_search_fee
from tests.helpers.pdfs import pdf_part
from tests.helpers.simulator import Stream, chat

SONAR = "perplexity/sonar"  # $0.005 a request on top of its tokens
LLAMA = "meta-llama/llama-3.1-8b-instruct"  # no file input, no native search: OCR and Exa


async def _record(sim_client, control, generation_id: str) -> tuple[dict, dict]:
    """The generation as ``/_sim/billed`` lists it and as ``/generation`` reports it."""
    listed = {g["id"]: g for g in (await control.get("/billed")).json()["data"]}[generation_id]
    answer = await sim_client.get("/generation", params={"id": generation_id})
    assert answer.status_code == 200, answer.text
    return listed, json.loads(answer.text, parse_float=Decimal)["data"]


async def _key_usage(sim_client) -> Decimal:
    return Decimal(str((await sim_client.get("/key")).json()["data"]["usage"]))


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "non-streamed"])
async def test_a_generation_that_ends_in_an_error_is_not_charged(sim_client, control, stream):
    body = chat("tell me more [[sim tokens=40 error_after=12]]", model=SONAR, stream=stream)
    response = await sim_client.post("/chat/completions", json=body)
    assert response.status_code == 200
    if stream:
        [failure] = [c for c in Stream.parse(response.text).chunks if "error" in c]
        assert failure["choices"][0]["finish_reason"] == "error"
    else:
        assert response.json()["error"]["code"] == 502
    listed, record = await _record(sim_client, control, response.headers["x-generation-id"])
    assert (listed["finish_reason"], listed["tokens_completion"], listed["cost"]) == ("error", 12, "0")
    assert (record["finish_reason"], record["total_cost"], record["usage"]) == ("error", 0, 0)
    assert await _key_usage(sim_client) == 0


async def test_an_error_keeps_its_search_and_ocr_fees_but_not_its_tokens_or_request_price(sim_client, control):
    parts = [{"type": "text", "text": "Summarise [[sim error_after=5]]"}, pdf_part(2)]
    body = chat(parts, model=LLAMA, tools=[{"type": "openrouter:web_search"}], stream=True)
    response = await sim_client.post("/chat/completions", json=body)
    listed, record = await _record(sim_client, control, response.headers["x-generation-id"])
    fees = exa_search_fee(5) + 2 * OCR_PAGE
    assert (listed["tokens_completion"], Decimal(listed["cost"])) == (5, fees)
    assert record["total_cost"] == fees
    assert await _key_usage(sim_client) == fees


async def test_a_connection_dropped_before_any_token_is_not_charged(sim_client, control):
    body = chat("hello [[sim drop_after=0]]", model=SONAR, stream=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await sim_client.post("/chat/completions", json=body)
    [listed] = (await control.get("/billed")).json()["data"]
    assert (listed["finish_reason"], listed["tokens_completion"], listed["cost"]) == (None, 0, "0")
    assert await _key_usage(sim_client) == 0


async def test_a_connection_dropped_after_some_tokens_pays_for_them(sim_client, control):
    body = chat("tell me more [[sim tokens=40 drop_after=10]]", model=SONAR, stream=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await sim_client.post("/chat/completions", json=body)
    [listed] = (await control.get("/billed")).json()["data"]
    expected = listed["tokens_prompt"] * Decimal("0.000001") + 10 * Decimal("0.000001") + Decimal("0.005")
    assert (listed["finish_reason"], listed["tokens_completion"]) == (None, 10)
    assert Decimal(listed["cost"]) == expected
    assert await _key_usage(sim_client) == expected


async def test_a_generation_with_no_completion_token_but_a_finish_reason_is_charged(sim_client, control):
    response = await sim_client.post("/chat/completions", json=chat("echo:", model=SONAR))
    usage = json.loads(response.text, parse_float=Decimal)["usage"]
    assert usage["completion_tokens"] == 0
    listed, record = await _record(sim_client, control, response.headers["x-generation-id"])
    assert listed["finish_reason"] is not None
    assert Decimal(listed["cost"]) == usage["cost"] == usage["prompt_tokens"] * Decimal("0.000001") + Decimal("0.005")
    assert record["total_cost"] == usage["cost"]

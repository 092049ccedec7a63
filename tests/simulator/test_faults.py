"""Faults, triggered by header, by ``[[sim ...]]`` directive and per model, produce the real shapes."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.simulator import Stream, chat

KEEPALIVE = ": OPENROUTER PROCESSING"


async def post(sim_client, body: dict, fault: str | None = None):
    headers = {"X-Sim-Fault": fault} if fault else {}
    return await sim_client.post("/chat/completions", json=body, headers=headers)


async def stream(sim_client, body: dict, fault: str | None = None) -> Stream:
    response = await post(sim_client, {**body, "stream": True}, fault)
    assert response.status_code == 200, response.text
    return Stream.parse(response.text)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "context_length_exceeded"),
        (402, "payment_required"),
        (408, "timeout"),
        (429, "rate_limit_exceeded"),
        (502, "provider_unavailable"),
        (503, "provider_overloaded"),
    ],
)
async def test_a_status_fault_answers_the_real_error(sim_client, status, error_type):
    response = await post(sim_client, chat(), f"status={status}")
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == status
    assert error["message"]
    assert error["metadata"]["error_type"] == error_type


async def test_401_and_404_faults(sim_client):
    unauthorised = await post(sim_client, chat(), "status=401")
    assert unauthorised.json() == {"error": {"code": 401, "message": "User not found."}}
    missing = await post(sim_client, chat(), "status=404")
    assert missing.json() == {"error": {"code": 404, "message": "No endpoints found for openai/gpt-4o."}}


async def test_moderation_names_reasons_and_flagged_input(sim_client):
    response = await post(sim_client, chat("something rude"), "status=403")
    assert response.status_code == 403
    metadata = response.json()["error"]["metadata"]
    assert metadata["reasons"] == ["harassment"]
    assert metadata["flagged_input"] == "something rude"
    assert metadata["provider_name"] == "OpenAI"


async def test_502_carries_the_providers_raw_error(sim_client):
    metadata = (await post(sim_client, chat(), "status=502")).json()["error"]["metadata"]
    assert metadata["provider_name"] == "OpenAI"
    assert metadata["raw"]
    assert (await post(sim_client, chat(), "status=502")).json()["error"]["message"] == "Provider returned error"


async def test_retry_after_is_sent_with_the_error(sim_client):
    response = await post(sim_client, chat(), "status=429 retry_after=3")
    assert response.headers["retry-after"] == "3"


async def test_a_directive_in_the_last_user_message_triggers_a_fault_and_is_stripped(sim_client):
    failed = await post(sim_client, chat("hello [[sim status=503]]"))
    assert failed.status_code == 503
    echoed = await post(sim_client, chat("echo: exact text [[sim tokens=3, no_cost=1]]"))
    data = echoed.json()
    assert data["choices"][0]["message"]["content"] == "exact text"
    assert "cost" not in data["usage"]


async def test_a_directive_in_a_text_part_counts_too(sim_client):
    content = [{"type": "text", "text": "[[sim status=429]] hi"}]
    assert (await post(sim_client, chat(content))).status_code == 429


async def test_per_model_faults_apply_to_that_model_only(sim_client, sim):
    sim.set_fault("openai/gpt-4o", "status=502")
    assert (await post(sim_client, chat())).status_code == 502
    assert (await post(sim_client, chat(model="openai/gpt-4o-mini"))).status_code == 200
    sim.clear_faults()
    assert (await post(sim_client, chat())).status_code == 200


async def test_fail_first_fails_k_requests_with_that_key_then_succeeds(sim_client):
    spec = "fail_first=2 key=flaky status=429 retry_after=1"
    statuses = [(await post(sim_client, chat(), spec)).status_code for _ in range(4)]
    assert statuses == [429, 429, 200, 200]
    assert (await post(sim_client, chat(), "fail_first=1 key=other")).status_code == 503


async def test_error_after_sends_a_mid_stream_error_and_no_done(sim_client):
    streamed = await stream(sim_client, chat("echo: one two three four five"), "error_after=2 error_code=429")
    assert not streamed.done
    last = streamed.chunks[-1]
    assert last["error"]["code"] == 429
    assert last["error"]["metadata"]["error_type"] == "rate_limit_exceeded"
    assert last["choices"][0]["finish_reason"] == "error"
    assert last["choices"][0]["delta"] == {"content": ""}
    assert streamed.content == "one two"


async def test_drop_after_cuts_the_connection(sim_client, sim):
    with pytest.raises(httpx.RemoteProtocolError):
        await post(sim_client, {**chat("echo: one two three four"), "stream": True}, "drop_after=3")
    generation = next(iter(sim.generations.values()))
    assert generation.tokens_completion == 3
    assert generation.finish_reason is None
    assert sim.stats()["open_streams"] == 0


async def test_stall_sends_only_keepalives_for_a_while(sim_client):
    streamed = await stream(sim_client, chat("echo: aaaa bbbb cccc"), "stall=0.2 stall_after=1")
    kinds = ["ka" if item == KEEPALIVE else "data" for item in streamed.items]
    first_data = kinds.index("data")
    after_first = kinds[first_data + 1 :]
    assert after_first[:2] == ["ka", "ka"]
    assert streamed.done


async def test_malformed_after_sends_one_invalid_chunk_then_carries_on(sim_client):
    streamed = await stream(sim_client, chat("echo: aaaa bbbb"), "malformed_after=1")
    invalid = [item for item in streamed.items if isinstance(item, str) and item.startswith("{")]
    assert len(invalid) == 1
    assert streamed.content == "aaaa bbbb"
    assert streamed.done


async def test_usage_faults(sim_client):
    without = await stream(sim_client, chat(), "no_usage=1")
    assert without.usage is None
    assert without.done
    no_cost = await stream(sim_client, chat(), "no_cost=1")
    assert "cost" not in no_cost.usage
    early = await stream(sim_client, chat(), "usage_before_finish=1")
    *_, usage_chunk, finish_chunk = early.chunks
    assert usage_chunk["choices"] == [] and "usage" in usage_chunk
    assert finish_chunk["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in (await post(sim_client, chat(), "no_usage=1")).json()


async def test_timing_faults_still_complete(sim_client):
    streamed = await stream(sim_client, chat("echo: quick"), "first_byte_delay=0.01 ttft=0.12 tps=3000")
    assert streamed.items[:2] == [KEEPALIVE, KEEPALIVE]
    assert streamed.content == "quick"


async def test_tokens_sets_the_reply_length(sim_client):
    data = (await post(sim_client, chat(), "tokens=12")).json()
    assert 12 <= data["usage"]["completion_tokens"] <= 14
    assert data["choices"][0]["message"]["content"].endswith(".")


async def test_an_unknown_fault_key_is_reported(sim_client):
    response = await post(sim_client, chat(), "explode=1")
    assert response.status_code == 400
    assert "explode" in response.json()["error"]["message"]

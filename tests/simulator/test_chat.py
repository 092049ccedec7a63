"""POST /chat/completions: deterministic replies, usage, streaming shape, tools, images, fallbacks."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.helpers.simulator import Stream, chat

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


async def complete(sim_client, body: dict) -> dict:
    response = await sim_client.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def stream(sim_client, body: dict) -> Stream:
    response = await sim_client.post("/chat/completions", json={**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return Stream.parse(response.text)


async def test_it_answers_in_the_real_shape(sim_client):
    response = await sim_client.post("/chat/completions", json=chat())
    data = response.json()
    assert response.headers["x-generation-id"] == data["id"]
    assert data["id"].startswith("gen-")
    assert len(data["id"].rsplit("-", 1)[1]) == 20
    assert data["object"] == "chat.completion"
    assert data["model"] == "openai/gpt-4o"
    assert data["provider"] == "OpenAI"
    assert data["system_fingerprint"]
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["native_finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["refusal"] is None
    assert choice["message"]["reasoning"] is None
    assert 30 <= data["usage"]["completion_tokens"] <= 63


async def test_the_same_request_gets_the_same_reply(sim_client):
    first = await complete(sim_client, chat("tell me about rivers"))
    second = await complete(sim_client, chat("tell me about rivers"))
    other = await complete(sim_client, chat("tell me about gardens"))
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    assert first["choices"][0]["message"]["content"] != other["choices"][0]["message"]["content"]


async def test_streaming_and_not_give_the_same_text(sim_client):
    whole = await complete(sim_client, chat("same text please"))
    streamed = await stream(sim_client, chat("same text please"))
    assert streamed.content == whole["choices"][0]["message"]["content"]


async def test_echo_returns_the_text_exactly(sim_client):
    text = "Hello,   wörld!\n  Tabs\tand 🚀 emoji — stay exact.  "
    data = await complete(sim_client, chat("echo: " + text))
    assert data["choices"][0]["message"]["content"] == text
    streamed = await stream(sim_client, chat("echo: " + text))
    assert streamed.content == text
    assert len([c for c in streamed.chunks if c.get("choices") and c["choices"][0]["delta"].get("content")]) > 5


async def test_max_tokens_cuts_the_reply_with_finish_reason_length(sim_client):
    data = await complete(sim_client, chat("a long one [[sim tokens=50]]", max_tokens=7))
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 7
    streamed = await stream(sim_client, chat("a long one [[sim tokens=50]]", max_tokens=7))
    assert streamed.finish_reasons == ["length"]
    assert streamed.usage["completion_tokens"] == 7


async def test_anthropic_reports_its_own_native_finish_reason(sim_client):
    data = await complete(sim_client, chat("echo: one two three", model="anthropic/claude-sonnet-4", max_tokens=2))
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["choices"][0]["native_finish_reason"] == "max_tokens"


async def test_usage_cost_is_computed_from_the_models_own_prices(sim_client):
    models = {m["id"]: m for m in (await sim_client.get("/models")).json()["data"]}
    for model_id in ["openai/gpt-4o", "anthropic/claude-opus-4.1", "openai/gpt-4o-mini-search-preview"]:
        response = await sim_client.post("/chat/completions", json=chat("what does it cost?", model=model_id))
        usage = json.loads(response.text, parse_float=Decimal)["usage"]
        pricing = {k: Decimal(v) for k, v in models[model_id]["pricing"].items()}
        expected = (
            usage["prompt_tokens"] * pricing["prompt"]
            + usage["completion_tokens"] * pricing["completion"]
            + pricing.get("request", Decimal(0))
        )
        assert usage["cost"] == expected
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["is_byok"] is False
        assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0}
        assert usage["completion_tokens_details"] == {"reasoning_tokens": 0, "image_tokens": 0}
        assert usage["cost_details"] == {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": usage["prompt_tokens"] * pricing["prompt"],
            "upstream_inference_completions_cost": usage["completion_tokens"] * pricing["completion"],
        }


async def test_free_models_cost_nothing(sim_client):
    data = await complete(sim_client, chat(model="meta-llama/llama-3.3-70b-instruct:free"))
    assert data["usage"]["cost"] == 0


async def test_prompt_tokens_are_a_simple_approximation(sim_client):
    data = await complete(sim_client, chat("x" * 40))
    assert data["usage"]["prompt_tokens"] == 40 // 4 + 4


async def test_a_stream_has_keepalive_then_chunks_then_finish_then_usage_then_done(sim_client):
    streamed = await stream(sim_client, chat("stream please"))
    assert streamed.items[0] == ": OPENROUTER PROCESSING"
    assert streamed.done
    chunks = streamed.chunks
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "openai/gpt-4o"
        assert chunk["provider"] == "OpenAI"
    *deltas, finish, usage = chunks
    for delta in deltas:
        choice = delta["choices"][0]
        assert choice["index"] == 0
        assert choice["finish_reason"] is None
        assert choice["native_finish_reason"] is None
        assert choice["logprobs"] is None
        assert choice["delta"]["content"]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == len(deltas)
    assert len({c["id"] for c in chunks}) == 1


async def test_tokens_per_chunk_groups_tokens(sim_client, sim):
    sim.update_config(tokens_per_chunk=4)
    streamed = await stream(sim_client, chat("echo: " + "abcd" * 8))
    deltas = [c for c in streamed.chunks if c.get("choices") and c["choices"][0]["delta"].get("content")]
    assert [d["choices"][0]["delta"]["content"] for d in deltas] == ["abcd" * 4, "abcd" * 4]


async def test_a_slow_first_token_is_covered_by_keepalives(sim_client, sim):
    sim.update_config(ttft=0.2, keepalive_interval=0.05)
    streamed = await stream(sim_client, chat("echo: hi"))
    first_chunk = next(i for i, item in enumerate(streamed.items) if isinstance(item, dict))
    assert first_chunk >= 2
    assert all(item == ": OPENROUTER PROCESSING" for item in streamed.items[:first_chunk])


async def test_reasoning_models_stream_reasoning_first(sim_client):
    streamed = await stream(sim_client, chat("think", model="deepseek/deepseek-r1"))
    deltas = [c["choices"][0]["delta"] for c in streamed.chunks if c.get("choices")]
    kinds = ["reasoning" if d.get("reasoning") else "content" for d in deltas if d.get("reasoning") or d.get("content")]
    assert kinds[0] == "reasoning"
    assert kinds[-1] == "content"
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")
    assert streamed.usage["completion_tokens_details"]["reasoning_tokens"] == kinds.count("reasoning")

    data = await complete(sim_client, chat("think", model="deepseek/deepseek-r1"))
    assert data["choices"][0]["message"]["reasoning"]


async def test_other_models_reason_only_when_asked(sim_client):
    plain = await complete(sim_client, chat("think", model="anthropic/claude-sonnet-4"))
    asked = await complete(sim_client, chat("think", model="anthropic/claude-sonnet-4", reasoning={"effort": "low"}))
    assert plain["choices"][0]["message"]["reasoning"] is None
    assert asked["choices"][0]["message"]["reasoning"]
    assert asked["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


async def test_a_mentioned_tool_is_called_streaming_by_index(sim_client):
    streamed = await stream(sim_client, chat("What does get_weather say for Paris?", tools=TOOLS))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in streamed.chunks
        if c.get("choices") and "tool_calls" in c["choices"][0]["delta"]
    ]
    opening, *pieces = calls
    assert opening["index"] == 0
    assert opening["id"].startswith("call_")
    assert opening["type"] == "function"
    assert opening["function"] == {"name": "get_weather", "arguments": ""}
    assert len(pieces) > 1
    assert all(p["index"] == 0 and set(p["function"]) == {"arguments"} for p in pieces)
    arguments = json.loads("".join(p["function"]["arguments"] for p in pieces))
    assert set(arguments) == {"city", "days"}
    assert streamed.finish_reasons == ["tool_calls"]
    assert streamed.done


async def test_a_call_directive_chooses_tools_and_arguments(sim_client):
    body = chat('call:get_weather({"city": "Oslo"}) and call:get_weather({"city": "Rome"})', tools=TOOLS)
    data = await complete(sim_client, body)
    message = data["choices"][0]["message"]
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    assert [json.loads(c["function"]["arguments"]) for c in message["tool_calls"]] == [
        {"city": "Oslo"},
        {"city": "Rome"},
    ]
    assert len({c["id"] for c in message["tool_calls"]}) == 2

    streamed = await stream(sim_client, body)
    openings = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in streamed.chunks
        if c.get("choices") and "id" in (c["choices"][0]["delta"].get("tool_calls") or [{}])[0]
    ]
    assert [o["index"] for o in openings] == [0, 1]


async def test_a_tool_result_is_answered_in_text(sim_client):
    body = {
        "model": "openai/gpt-4o",
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "weather? get_weather"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees and sunny"},
        ],
    }
    data = await complete(sim_client, body)
    assert data["choices"][0]["message"]["content"] == "The result is 21 degrees and sunny."
    assert data["choices"][0]["finish_reason"] == "stop"


async def test_tools_on_a_toolless_model_find_no_endpoint(sim_client):
    response = await sim_client.post(
        "/chat/completions", json=chat("get_weather", model="microsoft/phi-4", tools=TOOLS)
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("No endpoints found that support tool use.")
    assert response.json()["error"]["code"] == 404


async def test_images_are_accepted_by_vision_models_only(sim_client):
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]
    assert (await sim_client.post("/chat/completions", json=chat(content))).status_code == 200
    refused = await sim_client.post("/chat/completions", json=chat(content, model="mistralai/mistral-7b-instruct"))
    assert refused.status_code == 404
    assert refused.json() == {"error": {"code": 404, "message": "No endpoints found that support image input"}}


async def test_a_malformed_image_is_a_400(sim_client):
    content = [
        {"type": "text", "text": "hm"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
    ]
    response = await sim_client.post("/chat/completions", json=chat(content))
    assert response.status_code == 400
    assert response.json()["error"]["metadata"]["error_type"] == "invalid_image"


async def test_an_invalid_model_is_a_400(sim_client):
    response = await sim_client.post("/chat/completions", json=chat(model="nope/nothing"))
    assert response.status_code == 400
    assert response.json() == {"error": {"code": 400, "message": "nope/nothing is not a valid model ID"}}


async def test_the_models_list_falls_back_in_order(sim_client, sim):
    sim.set_fault("openai/gpt-4o", "status=503")
    body = chat("echo: fallback", model="nope/nothing", models=["openai/gpt-4o", "anthropic/claude-3.5-haiku"])
    data = await complete(sim_client, body)
    assert data["model"] == "anthropic/claude-3.5-haiku"
    assert data["provider"] == "Anthropic"
    assert sim.stats()["requests"] == {"nope/nothing": 1, "openai/gpt-4o": 1, "anthropic/claude-3.5-haiku": 1}


async def test_when_every_fallback_fails_the_last_error_answers(sim_client, sim):
    sim.set_fault("anthropic/claude-3.5-haiku", "status=429")
    response = await sim_client.post(
        "/chat/completions", json=chat(models=["nope/nothing", "anthropic/claude-3.5-haiku"], model=None)
    )
    assert response.status_code == 429


async def test_the_auto_router_serves_with_a_real_model(sim_client):
    data = await complete(sim_client, chat(model="openrouter/auto"))
    assert data["model"] != "openrouter/auto"
    assert data["usage"]["cost"] > 0


async def test_bad_parameters_are_named(sim_client):
    missing = await sim_client.post("/chat/completions", json={"model": "openai/gpt-4o"})
    assert missing.status_code == 400
    assert "messages" in missing.json()["error"]["message"]
    hot = await sim_client.post("/chat/completions", json=chat(temperature=3))
    assert hot.status_code == 400
    assert "temperature" in hot.json()["error"]["message"]
    not_json = await sim_client.post("/chat/completions", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400


async def test_a_prompt_beyond_the_context_window_is_refused(sim_client):
    response = await sim_client.post(
        "/chat/completions", json=chat("x" * 70000, model="microsoft/phi-4", max_tokens=100)
    )
    assert response.status_code == 400
    assert response.json()["error"]["metadata"]["error_type"] == "context_length_exceeded"

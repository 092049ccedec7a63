"""Translating OpenAI's chat format: strict validation naming the field, what passes, what is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.openai_compat import (
    ChunkWriter,
    error_response_parts,
    parse_body,
    parse_chat_request,
    upstream_status,
    usd,
)
from gateway.types import CallResult
from openrouter import errors as upstream
from openrouter.events import Finish, Started, TextDelta, ToolCallDelta, Usage
from orweb.errors import BudgetExceeded, InvalidRequest, RateLimitExceeded, UpstreamFailed

USER = {"role": "user", "content": "hi"}


def body(**fields):
    return {"model": "openai/gpt-4o-mini", "messages": [USER], **fields}


def param_of(fields: dict) -> str | None:
    with pytest.raises(InvalidRequest) as raised:
        parse_chat_request(fields)
    assert raised.value.param is None or raised.value.param in raised.value.message
    return raised.value.param


def test_it_accepts_a_minimal_request():
    parsed = parse_chat_request(body())
    assert parsed.chat.model == "openai/gpt-4o-mini"
    assert parsed.chat.max_tokens is None
    assert parsed.stream is False


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [USER]}, "model"),
        (body(model=""), "model"),
        (body(messages="hi"), "messages"),
        (body(messages=[]), "messages"),
        (body(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (body(messages=[USER, {"role": "user"}]), "messages[1].content"),
        (body(messages=[{"role": "user", "content": [{"type": "audio"}]}]), "messages[0].content[0].type"),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": 3}]}]),
            "messages[0].content[0].text",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]),
            "messages[0].content[0].image_url.url",
        ),
        (
            body(messages=[{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]),
            "messages[0].content[0].type",
        ),
        (body(messages=[USER, {"role": "tool", "content": "42"}]), "messages[1].tool_call_id"),
        (
            body(messages=[{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {}}]}]),
            "messages[0].tool_calls[0].function.name",
        ),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens="10"), "max_tokens"),
        (body(max_tokens=True), "max_tokens"),
        (body(max_completion_tokens=-1), "max_completion_tokens"),
        (body(temperature=2.5), "temperature"),
        (body(temperature="hot"), "temperature"),
        (body(top_p=1.5), "top_p"),
        (body(stream="yes"), "stream"),
        (body(n=2), "n"),
        (body(seed=1.5), "seed"),
        (body(stop=["a", "b", "c", "d", "e"]), "stop"),
        (body(tools={"type": "function"}), "tools"),
        (body(tools=[{"type": "function", "function": {"name": ""}}]), "tools[0].function.name"),
        (body(tools=[{"type": "retrieval"}]), "tools[0].type"),
        (body(tool_choice="sometimes"), "tool_choice"),
        (body(response_format={"type": "yaml"}), "response_format.type"),
        (
            body(response_format={"type": "json_schema", "json_schema": {}}),
            "response_format.json_schema.name",
        ),
        (body(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        (body(models="openai/gpt-4o"), "models"),
    ],
)
def test_it_names_the_invalid_field(fields, param):
    assert param_of(fields) == param


@pytest.mark.parametrize("field", ["api_key", "base_url", "api_base", "plugins"])
def test_it_refuses_fields_that_change_where_the_request_goes_or_who_pays(field):
    assert param_of(body(**{field: "x"})) == field


@pytest.mark.parametrize("key", ["order", "only"])
def test_it_refuses_provider_routing_that_could_cost_more_than_the_hold(key):
    assert param_of(body(provider={key: ["OpenAI"]})) == f"provider.{key}"


def test_it_refuses_provider_sorting_other_than_by_price():
    assert param_of(body(provider={"sort": "throughput"})) == "provider.sort"


def test_narrowing_provider_preferences_pass():
    provider = {"data_collection": "deny", "sort": "price", "ignore": ["Azure"]}
    assert parse_chat_request(body(provider=provider)).chat.params["provider"] == provider


def test_it_strips_user_transforms_and_unknown_fields():
    parsed = parse_chat_request(body(user="someone-else", transforms=["middle-out"], store=True, usage={}))
    assert parsed.chat.params == {}


def test_it_passes_through_sampling_tools_and_response_format():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    parsed = parse_chat_request(
        body(
            temperature=0.2,
            top_p=0.9,
            stop=["\n"],
            seed=7,
            tools=tools,
            tool_choice="auto",
            response_format=fmt,
            reasoning={"effort": "low"},
            frequency_penalty=0.5,
            presence_penalty=-0.5,
            max_tokens=50,
            models=["openai/gpt-4o"],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert parsed.chat.params == {
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n"],
        "seed": 7,
        "tools": tools,
        "tool_choice": "auto",
        "response_format": fmt,
        "reasoning": {"effort": "low"},
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
    }
    assert parsed.chat.max_tokens == 50
    assert parsed.chat.fallback_models == ["openai/gpt-4o"]
    assert parsed.stream and parsed.include_usage


def test_max_completion_tokens_stands_in_for_max_tokens():
    assert parse_chat_request(body(max_completion_tokens=12)).chat.max_tokens == 12


def test_assistant_tool_calls_and_tool_answers_are_valid_history():
    messages = [
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert parse_chat_request(body(messages=messages)).chat.messages == messages


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_a_400(raw):
    with pytest.raises(InvalidRequest):
        parse_body(raw)


def test_usd_amounts_become_json_numbers_with_their_exact_digits():
    assert repr(usd(Decimal("0.0001234567"))) == "0.0001234567"
    assert repr(usd(Decimal("12345.6789012345"))) == "12345.6789012345"


def result(**fields) -> CallResult:
    values = {
        "ledger_id": 1,
        "status": "ok",
        "requested_model": "m",
        "served_model": "m",
        "provider": "P",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "cost": Decimal("0.00012"),
        "cost_source": "reported",
        "ttft_ms": 1,
        "latency_ms": 2,
        "generation_id": "gen-1",
        "finish_reason": "stop",
    }
    return CallResult(**{**values, **fields})


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (upstream.RateLimited("slow down", status=429, retry_after=3), 429),
        (upstream.Overloaded("busy", status=503), 503),
        (upstream.UpstreamError("provider down", status=502), 502),
        (upstream.InsufficientCredits("out of credit", status=402), 503),
        (upstream.AuthenticationError("User not found.", status=401), 502),
        (upstream.RequestTimeout("timeout", status=408), 504),
        (upstream.IdleTimeout("idle"), 504),
        (upstream.ModerationError("flagged", status=403), 403),
        (upstream.BadRequest("context too long", status=400), 400),
    ],
)
def test_upstream_failures_map_to_what_they_mean_for_the_caller(error, status):
    assert upstream_status(UpstreamFailed(str(error), status=error.status or 502, upstream=error)) == status


def test_rate_limits_say_when_to_retry():
    status, payload, headers = error_response_parts(RateLimitExceeded("Too many requests", retry_after=2.2))
    assert status == 429
    assert headers == {"Retry-After": "3"}
    assert payload["error"]["type"] == "rate_limit_error"


def test_budget_errors_are_402_in_openai_shape():
    error = BudgetExceeded("The monthly budget of user x can't cover this", budget="b", remaining=Decimal(1))
    status, payload, _ = error_response_parts(error)
    assert status == 402
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert payload["error"]["code"] == "budget_exceeded"


def decode(frames: bytes) -> list[str]:
    return [frame for frame in frames.decode().split("\n\n") if frame]


def test_chunks_come_in_openai_order_with_the_settled_cost_last():
    writer = ChunkWriter("orweb/auto", include_usage=True)
    out = b"".join(
        [
            writer.event(Started("gen-9", "openai/gpt-4o", "OpenAI")),
            writer.event(TextDelta("Hel")),
            writer.event(ToolCallDelta(0, "call_1", "get_weather", "")),
            writer.event(ToolCallDelta(0, None, None, '{"city":')),
            writer.event(Usage(3, 4, 7, Decimal("0.5"), 1, 0)),
            writer.event(Finish("tool_calls", None)),
            writer.end(result()),
        ]
    )
    frames = decode(out)
    assert frames[0].startswith('data: {"id":"gen-9"') and '"role":"assistant"' in frames[0]
    assert '"model":"openai/gpt-4o"' in frames[0]
    assert '"content":"Hel"' in frames[1]
    assert '"id":"call_1","type":"function"' in frames[2]
    assert '"arguments":"{\\"city\\":"' in frames[3]
    assert '"finish_reason":"tool_calls"' in frames[4]
    assert '"choices":[]' in frames[5] and '"cost":0.00012' in frames[5] and '"cached_tokens":1' in frames[5]
    assert frames[6] == "data: [DONE]"


def test_without_include_usage_the_usage_rides_on_the_finish_chunk():
    writer = ChunkWriter("m", include_usage=False)
    frames = decode(writer.event(Started("gen-1", "m", None)) + writer.end(result()))
    assert '"finish_reason":"stop"' in frames[1] and '"cost":0.00012' in frames[1]
    assert frames[2] == "data: [DONE]"

"""A /v1 chat request checked: strict validation naming the field, what passes, what is refused."""

from __future__ import annotations

import pytest

from gateway.api_requests import parse_body, parse_chat_request
from orweb.errors import InvalidRequest

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


@pytest.mark.parametrize("field", ["api_key", "base_url", "api_base"])
def test_it_refuses_fields_that_change_where_the_request_goes_or_who_pays(field):
    assert param_of(body(**{field: "x"})) == field


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (body(plugins="web"), "plugins"),
        (body(plugins=[{"id": "response-healing"}]), "plugins[0].id"),
        (body(plugins=[{"id": "file-parser", "pdf": {"engine": "magic"}}]), "plugins[0].pdf.engine"),
        (body(tools=[{"type": "openrouter:web_search", "max_results": 0}]), "tools[0].max_results"),
        (body(provider={"sort": "exacto"}), "provider.sort"),
        (body(provider={"order": "Groq"}), "provider.order"),
        (body(provider={"max_price": {"prompt": "cheap"}}), "provider.max_price.prompt"),
        (body(cache_control={"type": "forever"}), "cache_control.type"),
        (body(cache_control={"type": "ephemeral", "ttl": "1d"}), "cache_control.ttl"),
        (body(modalities=["video"]), "modalities"),
    ],
)
def test_it_names_the_invalid_surface_field(fields, param):
    assert param_of(fields) == param


def test_routing_preferences_and_per_use_tools_pass_for_admission_to_cap():
    provider = {"data_collection": "deny", "sort": "throughput", "order": ["Groq"], "only": ["Groq", "Together"]}
    extras = {
        "plugins": [{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}, {"id": "web"}],
        "tools": [{"type": "openrouter:web_search", "max_results": 3}],
        "reasoning": {"effort": "high", "exclude": True},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
        "session_id": "conversation-7",
        "modalities": ["image", "text"],
    }
    assert parse_chat_request(body(provider=provider, **extras)).chat.params == {"provider": provider, **extras}


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

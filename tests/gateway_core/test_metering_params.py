"""One table of request parameters (gateway.params) drives every path: what /v1 refuses, a call made from
Python (chat, batch lines, the app itself) is refused too, before anything is held or sent upstream; what
/v1 strips never reaches OpenRouter from any path."""

from __future__ import annotations

import logging

import pytest

from billing.models import Hold, LedgerEntry
from gateway import metered, params
from gateway.api_requests import parse_chat_request
from gateway.tokens import count_text_tokens
from orweb.errors import InvalidRequest
from orweb.upstream import openrouter_user_id
from tests.helpers.metering import TOOLS, ask, in_thread, upstream_bodies, upstream_calls

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = [
    *[({name: "x"}, name) for name in params.REFUSED],
    ({"plugins": [{"id": "response-healing"}]}, "plugins[0].id"),
    ({"n": 2}, "n"),
    ({"provider": {"order": "OpenAI"}}, "provider.order"),
    ({"provider": {"sort": "exacto"}}, "provider.sort"),
    ({"provider": {"api_base": "http://evil"}}, "provider.api_base"),
    ({"provider": "cheapest"}, "provider"),
    ({"temperature": 5}, "temperature"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
]


def _v1_refusal(fields: dict) -> str | None:
    with pytest.raises(InvalidRequest) as refused:
        parse_chat_request({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **fields})
    return refused.value.param


@pytest.mark.parametrize(("fields", "param"), REFUSED)
async def test_what_v1_refuses_a_python_caller_cannot_send_either(simulator, catalog, owner, caplog, fields, param):
    caplog.set_level(logging.INFO, logger="orweb.calls")
    assert _v1_refusal(fields) == param
    with pytest.raises(InvalidRequest) as refused:
        await metered.complete(owner, ask(params=fields), source="chat")
    assert refused.value.param == param
    assert upstream_calls(simulator) == 0
    assert await in_thread(Hold.objects.count)() == 0
    assert await in_thread(LedgerEntry.objects.count)() == 0
    assert any("status=refused code=invalid_request" in r.getMessage() for r in caplog.records)


async def test_stripped_and_unknown_fields_reach_no_upstream_from_any_path(simulator, catalog, owner):
    stripped = {
        **dict.fromkeys(params.STRIPPED, "x"),
        "models": ["openai/gpt-4o"],
        "max_tokens": 7,
        "stream": True,
        "store": True,
        "metadata": {"a": "b"},
    }
    kept = {"temperature": 0.2, "seed": 7, "tools": TOOLS, "provider": {"ignore": ["Azure"], "sort": "price"}}
    assert parse_chat_request(
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **stripped, **kept}
    ).chat.params == {"temperature": 0.2, "seed": 7, "tools": TOOLS, "provider": kept["provider"]}

    await metered.complete(owner, ask(params={**stripped, **kept}), source="chat")

    [body] = upstream_bodies(simulator)
    assert {name: body[name] for name in kept} == kept
    assert body["user"] == openrouter_user_id(owner.pk)
    assert body["max_tokens"] != 7 and body.get("stream") is not True
    for name in ("models", "transforms", "route", "usage", "store", "metadata"):
        assert name not in body


def test_every_pass_through_field_is_checked_once_and_kept():
    fields = {
        "temperature": 1,
        "top_p": 0.5,
        "frequency_penalty": -1,
        "presence_penalty": 1,
        "seed": 3,
        "stop": "\n",
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "reasoning": {"effort": "low"},
        "top_k": 40,
        "repetition_penalty": 1.1,
        "min_p": 0.1,
        "top_a": 0.2,
        "logit_bias": {"50256": -100},
        "logprobs": True,
        "top_logprobs": 2,
        "verbosity": "low",
        "plugins": [{"id": "file-parser", "pdf": {"engine": "pdf-text"}}, {"id": "web", "max_results": 3}],
        "modalities": ["image", "text"],
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
        "session_id": "conversation-1",
        "prompt_cache_key": "conversation-1",
        "image_config": {"aspect_ratio": "16:9"},
        "dimensions": 256,
        "encoding_format": "base64",
    }
    assert set(fields) == set(params.PASS_THROUGH)
    assert params.check(fields) == fields
    assert params.check(params.check(fields)) == fields
    assert params.check({"stop": None, "parallel_tool_calls": None}) == {}
    for name in ("temperature", "seed", "tools", "reasoning"):
        with pytest.raises(InvalidRequest):
            params.check({name: None})


def test_a_million_characters_are_counted_not_refused():
    assert count_text_tokens("word " * 250_000) >= 250_000

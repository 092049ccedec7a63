"""POST /v1/chat/completions through the official openai SDK, against the live app and the simulator."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from billing.models import LedgerEntry
from orweb.upstream import openrouter_user_id
from tests.helpers.metering import TOOLS

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai/gpt-4o-mini"
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGA"
    "WjR9awAAAABJRU5ErkJggg=="
)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_it_answers_in_openai_format_with_the_cost(api, owner, owner_key):
    reply = api.chat.completions.create(model=MODEL, messages=ask("echo: hello there"), max_tokens=50)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == "hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == MODEL
    entry = LedgerEntry.objects.get()
    assert entry.generation_id == reply.id
    assert entry.source == "api" and entry.api_key_id == owner_key.key.pk and entry.user_id == owner.pk
    assert Decimal(str(reply.usage.model_extra["cost"])) == entry.cost > 0
    assert reply.usage.prompt_tokens == entry.prompt_tokens


def test_it_streams_in_openai_format_and_settles(api):
    stream = api.chat.completions.create(
        model=MODEL,
        messages=ask("echo: one two three"),
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    entry = LedgerEntry.objects.get()
    assert entry.status == "ok" and entry.generation_id == chunks[0].id
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == entry.cost > 0


def test_it_passes_tools_through_and_returns_tool_calls(api):
    reply = api.chat.completions.create(
        model=MODEL, messages=ask("What is the weather? Use get_weather."), tools=TOOLS, max_tokens=200
    )
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)


def test_it_streams_tool_calls_by_index(api):
    stream = api.chat.completions.create(
        model=MODEL, messages=ask("Call get_weather please"), tools=TOOLS, max_tokens=200, stream=True
    )
    deltas = [tc for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.index == 0)
    assert "city" in json.loads(arguments)


def test_images_reach_an_image_model(api):
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": PIXEL}},
    ]
    reply = api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=50)
    assert reply.choices[0].message.content


def test_images_to_a_text_only_model_are_a_400(api):
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PIXEL}}]
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(
            model="openai/gpt-3.5-turbo", max_tokens=50, messages=[{"role": "user", "content": content}]
        )
    assert not LedgerEntry.objects.exists()


def test_response_format_and_sampling_reach_upstream_and_user_is_replaced(api, simulator, owner):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    api.chat.completions.create(
        model=MODEL,
        messages=ask("hi"),
        max_tokens=20,
        response_format=fmt,
        temperature=0.3,
        seed=4,
        user="pretend-to-be-someone-else",
    )
    sent = simulator.control("GET", "requests").json()[-1]["body"]
    assert sent["response_format"] == fmt and sent["temperature"] == 0.3 and sent["seed"] == 4
    assert sent["max_tokens"] == 20
    assert sent["user"] == openrouter_user_id(owner.pk)


def test_models_is_the_fallback_chain_and_the_ledger_shows_who_served(api, simulator):
    simulator.fault(MODEL, "status=503 retry_after=0")
    reply = api.chat.completions.create(
        model=MODEL, messages=ask("echo: still here"), max_tokens=50, extra_body={"models": ["openai/gpt-4.1-nano"]}
    )
    assert reply.model == "openai/gpt-4.1-nano"
    assert reply.choices[0].message.content == "still here"
    entry = LedgerEntry.objects.get(status="ok")
    assert (entry.requested_model, entry.served_model) == (MODEL, "openai/gpt-4.1-nano")


def test_a_fallback_the_user_may_not_use_is_never_called(api, simulator, owner):
    from django.contrib.auth.models import Group

    from gateway.models import GroupPolicy

    group = Group.objects.create(name="interns")
    GroupPolicy.objects.create(group=group, allowed_models=[MODEL])
    owner.groups.add(group)
    simulator.fault(MODEL, "status=503 retry_after=0")
    with pytest.raises(openai.APIStatusError) as raised:
        api.chat.completions.create(
            model=MODEL, messages=ask("hi"), max_tokens=50, extra_body={"models": ["anthropic/claude-opus-4.1"]}
        )
    assert raised.value.status_code == 503
    assert "anthropic/claude-opus-4.1" not in simulator.stats()["requests"]

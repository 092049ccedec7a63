"""The client against the simulator, in-process and over a real socket: the behaviour callers rely on."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from openrouter import (
    AuthenticationError,
    BadRequest,
    Finish,
    IdleTimeout,
    IncompleteStream,
    InsufficientCredits,
    InvalidResponse,
    ModerationError,
    NoEndpoint,
    NotFound,
    OpenRouterClient,
    Overloaded,
    RateLimited,
    RequestTimeout,
    RetryPolicy,
    Started,
    StreamError,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)
from tests.helpers.openrouter import API_KEY, collect

MODEL = "openai/gpt-4o-mini"
FALLBACK = "anthropic/claude-3.5-haiku"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def ask(text: str = "Say hello", model: str = MODEL, **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def with_fault(spec: str, **extra: object) -> dict:
    return ask(f"Say hello [[sim {spec}]]", **extra)


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def wait_for(condition, seconds: float = 5) -> None:
    """Poll a condition the server updates asynchronously (a close is seen a moment after it happens)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_it_streams_a_reply_with_exact_cost(openrouter_client, sim):
    events = await collect(openrouter_client, with_fault("tokens=20"))
    started, usage = events[0], events[-1]
    assert isinstance(started, Started)
    assert (started.model, started.provider) == (MODEL, "OpenAI")
    assert text_of(events)
    assert Finish("stop", "stop") in events
    assert isinstance(usage, Usage)
    generation = sim.generations[started.generation_id]
    assert usage.cost == generation.cost
    assert usage.completion_tokens == generation.tokens_completion > 0


async def test_chat_reads_a_reply_with_exact_cost(openrouter_client, sim):
    result = await openrouter_client.chat(ask())
    assert result.content
    assert result.finish_reason == "stop"
    assert result.usage.cost == sim.generations[result.generation_id].cost
    assert (result.model, result.provider) == (MODEL, "OpenAI")


async def test_it_streams_tool_calls(openrouter_client):
    body = ask('Use call:get_weather({"city": "Paris"})', tools=[WEATHER])
    events = await collect(openrouter_client, body)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert (calls[0].index, calls[0].name) == (0, "get_weather")
    assert calls[0].id
    assert json.loads("".join(c.arguments for c in calls)) == {"city": "Paris"}
    assert Finish("tool_calls", "tool_calls") in events


async def test_chat_reads_tool_calls(openrouter_client):
    result = await openrouter_client.chat(ask('Use call:get_weather({"city": "Oslo"})', tools=[WEATHER]))
    assert result.finish_reason == "tool_calls"
    assert json.loads(result.tool_calls[0]["function"]["arguments"]) == {"city": "Oslo"}


async def test_it_streams_reasoning(openrouter_client):
    events = await collect(openrouter_client, ask(model="deepseek/deepseek-r1", reasoning={"effort": "low"}))
    assert any(type(e).__name__ == "ReasoningDelta" for e in events)


async def test_usage_before_finish_is_still_reported_once(openrouter_client):
    events = await collect(openrouter_client, with_fault("usage_before_finish=1"))
    assert [type(e) for e in events[-2:]] == [Finish, Usage]


async def test_a_stream_without_usage_finishes_without_usage(openrouter_client):
    events = await collect(openrouter_client, with_fault("no_usage=1"))
    assert isinstance(events[-1], Finish)
    assert not any(isinstance(e, Usage) for e in events)


async def test_usage_without_cost_has_no_cost(openrouter_client):
    events = await collect(openrouter_client, with_fault("no_cost=1"))
    assert events[-1].cost is None
    assert events[-1].completion_tokens > 0


@pytest.mark.parametrize(("code", "cls"), [(502, UpstreamError), (429, RateLimited), (503, Overloaded)])
async def test_a_mid_stream_error_is_the_last_event(openrouter_client, code, cls):
    events = await collect(openrouter_client, with_fault(f"error_after=3 error_code={code}"))
    assert text_of(events)
    assert isinstance(events[-1], StreamError)
    assert isinstance(events[-1].error, cls)
    assert events[-1].error.message == "Provider returned error"


async def test_a_malformed_chunk_is_an_invalid_response(openrouter_client):
    events = await collect(openrouter_client, with_fault("malformed_after=3"))
    assert text_of(events)
    assert isinstance(events[-1].error, InvalidResponse)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (402, InsufficientCredits),
        (403, ModerationError),
        (404, NoEndpoint),
        (408, RequestTimeout),
        (429, RateLimited),
        (502, UpstreamError),
        (503, Overloaded),
    ],
)
async def test_each_error_status_raises_its_type(openrouter_client, sim, status, cls):
    with pytest.raises(cls) as raised:
        await collect(openrouter_client, with_fault(f"status={status}"))
    assert raised.value.status == status
    assert raised.value.message
    with pytest.raises(cls):
        await openrouter_client.chat(with_fault(f"status={status}"))


async def test_moderation_errors_carry_reasons(openrouter_client):
    with pytest.raises(ModerationError) as raised:
        await openrouter_client.chat(with_fault("status=403"))
    assert raised.value.reasons == ["harassment"]
    assert raised.value.flagged_input


async def test_retry_after_is_read_from_the_answer(openrouter_client, sim):
    with pytest.raises(RateLimited) as raised:
        await openrouter_client.chat(with_fault("status=429 retry_after=120"))
    assert raised.value.retry_after == 120
    assert sim.chat_requests == 1


async def test_it_retries_until_the_failures_stop(openrouter_client, sim):
    result = await openrouter_client.chat(with_fault("fail_first=2 key=chat status=503"))
    assert [type(e) for _, e in result.attempts] == [Overloaded, Overloaded]
    async with openrouter_client.stream(with_fault("fail_first=2 key=stream")) as events:
        assert text_of([e async for e in events])
        assert len(events.attempts) == 2
    assert sim.chat_requests == 6


async def test_it_falls_back_and_reports_which_model_answered(openrouter_client, sim):
    sim.set_fault(MODEL, "status=404")
    async with openrouter_client.stream(ask(), fallback_models=[FALLBACK]) as events:
        assert events.model == FALLBACK
        assert (await anext(events)).model == FALLBACK
        assert [(m, type(e)) for m, e in events.attempts] == [(MODEL, NoEndpoint)]
    result = await openrouter_client.chat(ask(), fallback_models=[FALLBACK])
    assert result.model == FALLBACK


async def test_it_falls_back_after_retrying_an_overloaded_model(openrouter_client, sim):
    sim.set_fault(MODEL, "status=503")
    result = await openrouter_client.chat(ask(), fallback_models=[FALLBACK])
    assert result.model == FALLBACK
    assert [m for m, _ in result.attempts] == [MODEL] * 3


async def test_it_reads_models_generations_and_the_key(openrouter_client, sim):
    models = await openrouter_client.models()
    assert MODEL in {m["id"] for m in models}
    result = await openrouter_client.chat(ask())
    generation = await openrouter_client.generation(result.generation_id)
    assert generation["total_cost"] == sim.generations[result.generation_id].cost
    assert "limit" in await openrouter_client.key()
    with pytest.raises(NotFound):
        await openrouter_client.generation("gen-0-missing")


async def test_a_key_the_server_does_not_know_is_an_authentication_error(live_simulator):
    async with OpenRouterClient("not-a-key", live_simulator[1]) as openrouter_client:
        with pytest.raises(AuthenticationError):
            await openrouter_client.chat(ask())


# Over a real socket only: ASGITransport buffers whole responses, so it can't show time or disconnects.


async def test_a_dropped_connection_is_an_incomplete_stream(live_client):
    events = await collect(live_client, with_fault("drop_after=3"))
    assert text_of(events)
    assert isinstance(events[-1].error, IncompleteStream)


async def test_the_idle_timeout_fires_despite_keep_alive_comments(live_client, live_simulator):
    events = await collect(live_client, with_fault("stall=30 stall_after=3"))
    assert text_of(events)
    assert isinstance(events[-1].error, IdleTimeout)
    sim = live_simulator[0].state.sim
    await wait_for(lambda: sim.cancelled_streams == 1)


async def test_an_idle_timeout_before_the_first_chunk_is_retried_then_raised(live_client, live_simulator):
    with pytest.raises(IdleTimeout):
        await collect(live_client, with_fault("stall=30"))
    assert live_simulator[0].state.sim.chat_requests == 3


async def test_leaving_the_block_early_closes_the_connection(live_client, live_simulator):
    sim = live_simulator[0].state.sim
    async with live_client.stream(with_fault("tps=50 tokens=500")) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                break
    await wait_for(lambda: sim.cancelled_streams == 1 and sim.open_streams == 0)
    generation = next(iter(sim.generations.values()))
    assert generation.cancelled
    assert generation.tokens_completion < 500


async def test_cancelling_the_reading_task_closes_the_connection(live_client, live_simulator):
    sim = live_simulator[0].state.sim
    first_text = asyncio.Event()

    async def read() -> None:
        async with live_client.stream(with_fault("tps=50 tokens=500")) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    first_text.set()

    task = asyncio.create_task(read())
    await first_text.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: sim.cancelled_streams == 1 and sim.open_streams == 0)


async def test_the_key_never_reaches_logs_or_errors(live_client, live_simulator, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []
    for spec in ("status=401", "status=503", "error_after=2", "fail_first=1 key=k"):
        try:
            errors.extend(await collect(live_client, with_fault(spec)))
        except Exception as exc:  # noqa: BLE001 - every failure is inspected below
            errors.append(exc)
    text = " ".join(f"{e!r} {e}" for e in errors)
    assert API_KEY not in text
    assert API_KEY not in caplog.text
    assert "Bearer" not in caplog.text


async def test_a_refused_connection_is_retried_then_raised():
    openrouter_client = OpenRouterClient(
        API_KEY, "http://127.0.0.1:9/api/v1", retry=RetryPolicy(max_attempts=2, base_delay=0.001)
    )
    async with openrouter_client:
        with pytest.raises(Exception) as raised:
            await openrouter_client.chat(ask())
    assert type(raised.value).__name__ == "ConnectionFailed"
    assert len(raised.value.attempts) == 2

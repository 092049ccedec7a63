"""The client over canned responses: what it sends, how it reads answers, retries and falls back."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import httpx
import pytest

from openrouter import (
    AuthenticationError,
    BadRequest,
    ConnectionFailed,
    InsufficientCredits,
    InvalidResponse,
    NoEndpoint,
    NotFound,
    OpenRouterClient,
    Overloaded,
    RateLimited,
    RequestTimeout,
    RetryPolicy,
    Started,
    TextDelta,
    UpstreamError,
    Usage,
)
from tests.helpers.openrouter import API_KEY, BODY, Replies, collect, mock_client, sse, streaming_response

COMPLETION = {
    "id": "gen-1-abc",
    "provider": "OpenAI",
    "model": "openai/gpt-4o-mini",
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "native_finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": "Hello",
                "reasoning": "thought",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.000042},
}
OK = httpx.Response(200, json=COMPLETION)
CHUNKS = sse(
    {"id": "gen-2", "model": "openai/gpt-4o-mini", "choices": [{"delta": {"content": "Hi"}}]},
    {"id": "gen-2", "choices": [{"delta": {}, "finish_reason": "stop"}]},
    "data: [DONE]\n\n",
)


def error(status: int, message: str = "failed", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": status, "message": message}}, headers=headers)


def streamed() -> httpx.Response:
    return streaming_response([CHUNKS])


async def test_it_sends_the_key_and_attribution_headers():
    replies = Replies(OK)
    async with mock_client(replies, app_url="https://orweb.example", app_title="orweb") as openrouter_client:
        await openrouter_client.chat(BODY)
    headers = replies.requests[0].headers
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["http-referer"] == "https://orweb.example"
    assert headers["x-title"] == headers["x-openrouter-title"] == "orweb"
    assert str(replies.requests[0].url) == "https://openrouter.test/api/v1/chat/completions"


async def test_it_always_sends_max_tokens():
    replies = Replies(OK)
    async with mock_client(replies, default_max_tokens=77) as openrouter_client:
        await openrouter_client.chat(BODY)
        await openrouter_client.chat({**BODY, "max_tokens": 5})
        await openrouter_client.chat({**BODY, "max_completion_tokens": 9})
    sent = [json.loads(r.content) for r in replies.requests]
    assert [b["max_tokens"] for b in sent] == [77, 5, 9]
    assert all(b["stream"] is False and "max_completion_tokens" not in b for b in sent)


async def test_it_does_not_change_the_callers_body():
    body = {**BODY}
    async with mock_client(Replies(OK)) as openrouter_client:
        await openrouter_client.chat(body)
    assert body == BODY


async def test_it_sends_decimals_as_numbers():
    replies = Replies(OK)
    async with mock_client(replies) as openrouter_client:
        await openrouter_client.chat(
            {**BODY, "temperature": Decimal("0.7"), "provider": {"max_price": {"prompt": Decimal(1)}}}
        )
    sent = json.loads(replies.requests[0].content)
    assert (sent["temperature"], sent["provider"]["max_price"]["prompt"]) == (0.7, 1)


async def test_chat_reads_the_completion():
    async with mock_client(Replies(OK)) as openrouter_client:
        result = await openrouter_client.chat(BODY)
    assert (result.generation_id, result.model, result.provider) == (
        "gen-1-abc",
        "openai/gpt-4o-mini",
        "OpenAI",
    )
    assert (result.content, result.reasoning, result.finish_reason) == ("Hello", "thought", "tool_calls")
    assert result.tool_calls[0]["function"]["name"] == "f"
    assert result.usage == Usage(3, 2, 5, Decimal("0.000042"), 0, 0)
    assert result.raw["usage"]["cost"] == Decimal("0.000042")
    assert result.attempts == []


async def test_chat_raises_an_error_inside_a_200():
    replies = Replies(httpx.Response(200, json={"error": {"code": 402, "message": "credits"}}))
    async with mock_client(replies) as openrouter_client:
        with pytest.raises(InsufficientCredits):
            await openrouter_client.chat(BODY)


async def test_chat_raises_on_a_body_that_is_not_json():
    async with mock_client(Replies(httpx.Response(200, text="<html>oops</html>"))) as openrouter_client:
        with pytest.raises(InvalidResponse):
            await openrouter_client.chat(BODY)


async def test_chat_raises_on_a_completion_without_choices():
    async with mock_client(Replies(httpx.Response(200, json={"id": "g", "choices": []}))) as openrouter_client:
        with pytest.raises(InvalidResponse):
            await openrouter_client.chat(BODY)


async def test_chat_raises_on_a_completion_of_unexpected_shape():
    replies = Replies(httpx.Response(200, json={"id": "g", "choices": [{"message": "hello"}]}))
    async with mock_client(replies) as openrouter_client:
        with pytest.raises(InvalidResponse):
            await openrouter_client.chat(BODY)


async def test_chat_raises_a_choice_that_ended_in_an_error():
    choice = {"finish_reason": "error", "error": {"code": 502, "message": "Provider returned error"}}
    replies = Replies(httpx.Response(200, json={"id": "g", "choices": [choice]}))
    async with mock_client(replies, retry=RetryPolicy(max_attempts=1)) as openrouter_client:
        with pytest.raises(UpstreamError):
            await openrouter_client.chat(BODY)


async def test_it_retries_transient_errors_then_succeeds():
    replies = Replies(error(503), error(502), OK)
    async with mock_client(replies) as openrouter_client:
        result = await openrouter_client.chat(BODY)
    assert len(replies.requests) == 3
    assert [(m, type(e)) for m, e in result.attempts] == [
        (BODY["model"], Overloaded),
        (BODY["model"], UpstreamError),
    ]


async def test_it_gives_up_after_max_attempts():
    replies = Replies(error(503))
    async with mock_client(replies, retry=RetryPolicy(max_attempts=2, base_delay=0.001)) as openrouter_client:
        with pytest.raises(Overloaded) as raised:
            await openrouter_client.chat(BODY)
    assert len(replies.requests) == 2
    assert len(raised.value.attempts) == 2


@pytest.mark.parametrize(("status", "cls"), [(400, BadRequest), (401, AuthenticationError), (402, InsufficientCredits)])
async def test_it_neither_retries_nor_falls_back_on_errors_of_the_request(status, cls):
    replies = Replies(error(status))
    async with mock_client(replies) as openrouter_client:
        with pytest.raises(cls):
            await openrouter_client.chat(BODY, fallback_models=["b/b"])
    assert len(replies.requests) == 1


async def test_it_does_not_wait_out_a_retry_after_longer_than_max_total():
    replies = Replies(error(429, **{"Retry-After": "3600"}))
    async with mock_client(replies) as openrouter_client:
        with pytest.raises(RateLimited) as raised:
            await openrouter_client.chat(BODY)
    assert len(replies.requests) == 1
    assert raised.value.retry_after == 3600


async def test_it_waits_a_short_retry_after_and_retries():
    replies = Replies(error(429, **{"Retry-After": "0.01"}), OK)
    async with mock_client(replies) as openrouter_client:
        await openrouter_client.chat(BODY)
    assert len(replies.requests) == 2


async def test_it_falls_back_to_the_next_model_and_says_which_answered():
    def answer(request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        if model == "a/a":
            return error(404, "No endpoints found for a/a.")
        return httpx.Response(200, json={**COMPLETION, "model": model})

    async with mock_client(answer) as openrouter_client:
        result = await openrouter_client.chat({**BODY, "model": "a/a"}, fallback_models=["b/b"])
    assert result.model == "b/b"
    assert [(m, type(e)) for m, e in result.attempts] == [("a/a", NoEndpoint)]


async def test_it_falls_back_after_retries_are_exhausted():
    replies = Replies(error(429), error(429), error(429), OK)
    async with mock_client(replies) as openrouter_client:
        result = await openrouter_client.chat({**BODY, "model": "a/a"}, fallback_models=["b/b"])
    assert replies.models == ["a/a", "a/a", "a/a", "b/b"]
    assert len(result.attempts) == 3


async def test_when_every_model_fails_it_raises_the_last_error_with_all_attempts():
    replies = Replies(error(404, "No endpoints found"), error(502))
    async with mock_client(replies, retry=RetryPolicy(max_attempts=1)) as openrouter_client:
        with pytest.raises(UpstreamError) as raised:
            await openrouter_client.chat({**BODY, "model": "a/a"}, fallback_models=["b/b"])
    assert [(m, type(e)) for m, e in raised.value.attempts] == [("a/a", NoEndpoint), ("b/b", UpstreamError)]


async def test_connection_failures_are_retried_then_raised():
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("Connection refused")

    async with mock_client(refuse) as openrouter_client:
        with pytest.raises(ConnectionFailed):
            await openrouter_client.chat(BODY)
    assert len(calls) == 3


async def test_client_timeouts_are_request_timeouts():
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    async with mock_client(slow, retry=RetryPolicy(max_attempts=1)) as openrouter_client:
        with pytest.raises(RequestTimeout):
            await openrouter_client.chat(BODY)


async def test_stream_sends_stream_true_and_max_tokens():
    replies = Replies(streamed)
    async with mock_client(replies) as openrouter_client:
        await collect(openrouter_client)
    sent = json.loads(replies.requests[0].content)
    assert (sent["stream"], sent["max_tokens"]) == (True, 1024)
    assert replies.requests[0].headers["accept"] == "text/event-stream"


async def test_stream_raises_status_errors_from_async_with():
    async with mock_client(Replies(error(401))) as openrouter_client:
        with pytest.raises(AuthenticationError):
            async with openrouter_client.stream(BODY):
                pytest.fail("the block must not run")


async def test_stream_retries_before_the_first_chunk():
    replies = Replies(error(503), streamed)
    async with mock_client(replies) as openrouter_client, openrouter_client.stream(BODY) as events:
        assert [type(e) async for e in events][:2] == [Started, TextDelta]
        assert [type(e) for _, e in events.attempts] == [Overloaded]


async def test_stream_retries_an_error_chunk_that_comes_before_any_content():
    first = sse({"error": {"code": 502, "message": "Provider returned error"}})
    replies = Replies(lambda: streaming_response([first]), streamed)
    async with mock_client(replies) as openrouter_client:
        events = await collect(openrouter_client)
    assert len(replies.requests) == 2
    assert events[1] == TextDelta("Hi")


async def test_stream_falls_back_and_reports_the_answering_model():
    replies = Replies(error(404, "No endpoints found"), streamed)
    openrouter_client = mock_client(replies, retry=RetryPolicy(max_attempts=1))
    async with (
        openrouter_client,
        openrouter_client.stream({**BODY, "model": "a/a"}, fallback_models=["openai/gpt-4o-mini"]) as events,
    ):
        assert [e async for e in events][0].model == events.model == "openai/gpt-4o-mini"
        assert [m for m, _ in events.attempts] == ["a/a"]
    assert replies.models == ["a/a", "openai/gpt-4o-mini"]


async def test_stream_raises_a_json_error_body_sent_with_status_200():
    replies = Replies(httpx.Response(200, json={"error": {"code": 403, "message": "flagged"}}))
    async with mock_client(replies) as openrouter_client:
        with pytest.raises(Exception, match="flagged"):
            await collect(openrouter_client)


async def test_stream_rejects_a_json_answer_that_is_not_an_event_stream():
    async with mock_client(Replies(httpx.Response(200, json=COMPLETION))) as openrouter_client:
        with pytest.raises(InvalidResponse):
            await collect(openrouter_client)


async def test_models_generation_and_key_return_the_data():
    def answer(request: httpx.Request) -> httpx.Response:
        match request.url.path:
            case "/api/v1/models":
                return httpx.Response(200, json={"data": [{"id": "a/a", "pricing": {"prompt": "0.000001"}}]})
            case "/api/v1/generation":
                return httpx.Response(200, json={"data": {"id": request.url.params["id"], "total_cost": 0.25}})
            case "/api/v1/key":
                return httpx.Response(200, json={"data": {"label": "k", "limit": None}})
        return error(404)

    async with mock_client(answer) as openrouter_client:
        assert (await openrouter_client.models())[0]["id"] == "a/a"
        assert await openrouter_client.generation("gen-9") == {"id": "gen-9", "total_cost": Decimal("0.25")}
        assert (await openrouter_client.key())["limit"] is None


async def test_generation_raises_not_found_while_it_is_not_ready():
    replies = Replies(error(404, "Generation gen-9 not found"))
    async with mock_client(replies) as openrouter_client:
        with pytest.raises(NotFound):
            await openrouter_client.generation("gen-9")
    assert len(replies.requests) == 1


async def test_models_rejects_an_unexpected_shape():
    async with mock_client(Replies(httpx.Response(200, json={"models": []}))) as openrouter_client:
        with pytest.raises(InvalidResponse):
            await openrouter_client.models()


async def test_the_key_never_shows_in_errors_reprs_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    echo = error(401, f"Invalid key Bearer {API_KEY}")
    replies = Replies(error(503, f"busy {API_KEY}"), echo)
    async with mock_client(replies) as openrouter_client:
        with pytest.raises(AuthenticationError) as raised:
            await openrouter_client.chat(BODY)
        text = f"{openrouter_client!r} {raised.value} {raised.value!r} {raised.value.metadata} {raised.value.attempts}"
    assert API_KEY not in text
    assert API_KEY not in caplog.text
    assert len(caplog.records) > 0


async def test_the_key_never_shows_in_a_stream_error():
    chunk = sse({"id": "g", "choices": [{"delta": {"content": "x"}}]}, {"error": {"code": 502, "message": API_KEY}})
    async with mock_client(Replies(lambda: streaming_response([chunk]))) as openrouter_client:
        events = await collect(openrouter_client)
    assert API_KEY not in f"{events[-1]!r} {events[-1].error}"


def test_the_client_repr_has_no_key():
    assert API_KEY not in repr(OpenRouterClient(API_KEY))

"""Decoding OpenRouter streams: SSE framing at any byte boundary, and every chunk shape seen in the wild."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from openrouter import (
    Finish,
    IncompleteStream,
    InvalidResponse,
    RateLimited,
    ReasoningDelta,
    Started,
    StreamError,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)
from tests.helpers.openrouter import BODY, Replies, collect, mock_client, sse, streaming_response

CHUNK = {
    "id": "gen-1-abc",
    "model": "openai/gpt-4o-mini",
    "provider": "OpenAI",
    "object": "chat.completion.chunk",
}


def delta(finish_reason: str | None = None, **fields: object) -> dict:
    return {**CHUNK, "choices": [{"index": 0, "delta": fields, "finish_reason": finish_reason}]}


USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 5,
    "total_tokens": 17,
    "cost": 0.0000123,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 2},
    "cost_details": {"upstream_inference_cost": 0.5},
}

SAMPLE = sse(
    ": OPENROUTER PROCESSING\n\n",
    delta(role="assistant", content=""),
    delta(reasoning="Let me think"),
    ": OPENROUTER PROCESSING\n\n",
    delta(content="Héllo 🌍"),
    delta(content=", world"),
    delta(tool_calls=[{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]),
    delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a": 1}'}}]),
    delta(finish_reason="tool_calls", content=""),
    {**CHUNK, "choices": [], "usage": USAGE},
    "data: [DONE]\n\n",
)

EXPECTED = [
    Started("gen-1-abc", "openai/gpt-4o-mini", "OpenAI"),
    ReasoningDelta("Let me think"),
    TextDelta("Héllo 🌍"),
    TextDelta(", world"),
    ToolCallDelta(0, "call_1", "f", ""),
    ToolCallDelta(0, None, None, '{"a": 1}'),
    Finish("tool_calls", None),
    Usage(12, 5, 17, Decimal("0.0000123"), 4, 2, cost_details={"upstream_inference_cost": "0.5"}),
]


async def events_of(*pieces: bytes) -> list:
    async with mock_client(Replies(lambda: streaming_response(pieces))) as client:
        return await collect(client)


async def test_it_decodes_a_whole_stream():
    assert await events_of(SAMPLE) == EXPECTED


async def test_it_decodes_the_stream_split_at_every_byte():
    cuts = iter(range(1, len(SAMPLE)))
    cut = 0

    def split() -> httpx.Response:
        nonlocal cut
        cut = next(cuts)
        return streaming_response([SAMPLE[:cut], SAMPLE[cut:]])

    async with mock_client(Replies(split)) as client:
        for _ in range(1, len(SAMPLE)):
            assert await collect(client) == EXPECTED, f"split at byte {cut}"


async def test_it_decodes_one_byte_at_a_time():
    assert await events_of(*(SAMPLE[i : i + 1] for i in range(len(SAMPLE)))) == EXPECTED


async def test_it_decodes_crlf_line_endings():
    assert await events_of(SAMPLE.replace(b"\n", b"\r\n")) == EXPECTED


async def test_it_decodes_crlf_split_between_cr_and_lf():
    crlf = SAMPLE.replace(b"\n", b"\r\n")
    cuts = [i + 1 for i in range(len(crlf)) if crlf[i : i + 1] == b"\r"]
    for cut in cuts:
        assert await events_of(crlf[:cut], crlf[cut:]) == EXPECTED


async def test_it_accepts_data_without_a_space_and_ignores_unknown_fields():
    body = b"event: message\nid: 7\nretry: 100\nfoo: bar\n"
    body += b'data:{"id":"g","model":"m","choices":[{"delta":{"content":"x"}}]}\n\n'
    body += b'data:{"id":"g","choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata:[DONE]\n\n'
    assert await events_of(body) == [Started("g", "m", None), TextDelta("x"), Finish("stop", None)]


async def test_it_keeps_reading_after_finish_for_usage():
    body = sse(
        delta(content="hi"),
        delta(finish_reason="stop"),
        {**CHUNK, "choices": [], "usage": USAGE},
        "data: [DONE]\n\n",
    )
    events = await events_of(body)
    assert events[-2:] == [Finish("stop", None), EXPECTED[-1]]


async def test_it_reads_usage_on_the_finish_chunk():
    finish = {**delta(finish_reason="length"), "usage": USAGE}
    finish["choices"][0]["native_finish_reason"] = "max_tokens"
    events = await events_of(sse(delta(content="hi"), finish))
    assert events[-2:] == [Finish("length", "max_tokens"), EXPECTED[-1]]


async def test_it_reads_usage_that_comes_before_the_finish():
    body = sse(
        delta(content="hi"),
        {**CHUNK, "choices": [], "usage": USAGE},
        delta(finish_reason="stop"),
        "data: [DONE]\n\n",
    )
    events = await events_of(body)
    assert events[-2:] == [Finish("stop", None), EXPECTED[-1]]


async def test_it_reports_repeated_usage_once_with_the_last_value():
    first = {**delta(content="a"), "usage": {**USAGE, "completion_tokens": 1}}
    events = await events_of(sse(first, {**delta(finish_reason="stop"), "usage": USAGE}))
    assert [e for e in events if isinstance(e, Usage)] == [EXPECTED[-1]]


async def test_it_parses_cost_exactly():
    body = b'data: {"id":"g","choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,'
    body += b'"completion_tokens":2,"cost":0.1000000000000000055511151231257827}}\n\n'
    usage = (await events_of(body))[-1]
    assert usage.cost == Decimal("0.1000000000000000055511151231257827")
    assert usage.total_tokens == 3


async def test_it_reports_a_missing_cost_as_none():
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    events = await events_of(sse({**delta(finish_reason="stop"), "usage": usage}))
    assert events[-1] == Usage(1, 1, 2, None, 0, 0)


async def test_it_skips_empty_and_null_deltas():
    body = sse(
        delta(content=""),
        delta(content=None),
        delta(reasoning=None),
        {**CHUNK, "choices": []},
        delta(finish_reason="stop"),
    )
    assert await events_of(body) == [EXPECTED[0], Finish("stop", None)]


async def test_it_streams_several_tool_calls_by_index():
    body = sse(
        delta(tool_calls=[{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}]),
        delta(tool_calls=[{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}]),
        delta(finish_reason="tool_calls"),
    )
    calls = [e for e in await events_of(body) if isinstance(e, ToolCallDelta)]
    assert calls == [
        ToolCallDelta(0, "a", "f", ""),
        ToolCallDelta(1, "b", "g", "{}"),
        ToolCallDelta(0, None, None, "{}"),
    ]


async def test_it_ends_with_a_stream_error_on_a_mid_stream_error_chunk():
    error_chunk = {
        **delta(finish_reason="error", content=""),
        "error": {
            "code": 502,
            "message": "Provider returned error",
            "metadata": {"error_type": "provider_unavailable"},
        },
    }
    events = await events_of(sse(delta(content="partial"), error_chunk, delta(content="never read")))
    assert events[:2] == [EXPECTED[0], TextDelta("partial")]
    assert len(events) == 3
    error = events[-1].error
    assert isinstance(error, UpstreamError)
    assert (error.status, error.code, error.message) == (None, 502, "Provider returned error")
    assert error.error_type == "provider_unavailable"


async def test_it_types_a_mid_stream_error_by_its_code():
    error_chunk = {**CHUNK, "error": {"code": 429, "message": "Rate limit exceeded"}}
    events = await events_of(sse(delta(content="x"), error_chunk))
    assert isinstance(events[-1].error, RateLimited)


async def test_it_keeps_usage_that_came_before_an_error():
    error_chunk = {**CHUNK, "error": {"code": 502, "message": "Provider returned error"}}
    events = await events_of(sse({**delta(content="x"), "usage": USAGE}, error_chunk))
    assert isinstance(events[-2], Usage)
    assert isinstance(events[-1], StreamError)


async def test_a_finish_reason_of_error_without_an_error_object_is_an_error():
    events = await events_of(sse(delta(content="x"), delta(finish_reason="error")))
    assert isinstance(events[-1].error, UpstreamError)


@pytest.mark.parametrize("bad", [b"data: {not json\n\n", b"data: [1, 2]\n\n"])
async def test_it_ends_with_a_stream_error_on_a_malformed_chunk(bad):
    events = await events_of(sse(delta(content="x")) + bad + sse(delta(content="never read")))
    assert events[:-1] == [EXPECTED[0], TextDelta("x")]
    assert isinstance(events[-1].error, InvalidResponse)


async def test_it_ends_with_a_stream_error_on_a_chunk_of_unexpected_shape():
    events = await events_of(sse(delta(content="x"), {**CHUNK, "choices": ["x"]}, delta(content="never read")))
    assert events[:-1] == [EXPECTED[0], TextDelta("x")]
    assert isinstance(events[-1].error, InvalidResponse)


async def test_a_stream_that_stops_without_finish_or_done_is_incomplete():
    events = await events_of(sse(delta(content="x")))
    assert isinstance(events[-1], StreamError)
    assert isinstance(events[-1].error, IncompleteStream)


async def test_a_stream_that_finishes_without_done_is_complete():
    assert await events_of(sse(delta(content="x"), delta(finish_reason="stop"))) == [
        EXPECTED[0],
        TextDelta("x"),
        Finish("stop", None),
    ]


async def test_a_stream_ended_by_done_without_finish_is_complete():
    assert await events_of(sse(delta(content="x"), "data: [DONE]\n\n")) == [EXPECTED[0], TextDelta("x")]


async def test_a_failure_after_the_finish_does_not_turn_the_answer_into_an_error():
    events = await events_of(sse(delta(content="x"), delta(finish_reason="stop")) + b"data: {broken\n\n")
    assert events[-1] == Finish("stop", None)


async def test_it_knows_the_answering_model_when_the_block_starts():
    client = mock_client(Replies(lambda: streaming_response([SAMPLE])))
    async with client, client.stream({**BODY, "model": "openrouter/auto"}) as events:
        assert (events.model, events.provider, events.generation_id) == (
            "openai/gpt-4o-mini",
            "OpenAI",
            "gen-1-abc",
        )
        assert [e async for e in events] == EXPECTED


async def test_it_takes_the_generation_id_from_the_header_when_chunks_have_none():
    body = sse({"choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}]})
    client = mock_client(Replies(lambda: streaming_response([body], **{"X-Generation-Id": "gen-h"})))
    async with client:
        assert (await collect(client))[0] == Started("gen-h", "openai/gpt-4o-mini", None)

"""The client's events for the wider surface: reasoning with its `reasoning_details`, citations and parsed
files (`annotations`), generated images, the usage details (cache writes, `cost_details`, server tools),
embeddings and the Responses API, from hand-written chunks and from the simulator."""

from __future__ import annotations

import base64
from decimal import Decimal

import httpx
import pytest

from openrouter import Annotations, Finish, ImageOut, ReasoningDelta, Started, StreamError, TextDelta, Usage
from openrouter.responses_stream import ResponsesDecoder
from openrouter.sse import ChunkDecoder
from tests.helpers.openrouter import collect, mock_client, sse

CHUNK = {"id": "gen-1-abc", "model": "anthropic/claude-sonnet-4", "provider": "Anthropic"}
DETAIL = {"type": "reasoning.text", "text": "Hmm", "format": "anthropic-claude-v1", "index": 0}
SIGNED = {"type": "reasoning.text", "text": "", "signature": "c2ln", "format": "anthropic-claude-v1", "index": 0}
CITATION = {
    "type": "url_citation",
    "url_citation": {"url": "https://a.example/", "title": "A", "start_index": 0, "end_index": 3},
}
IMAGE = "data:image/png;base64,iVBORw0KGgo="
USAGE = {
    "prompt_tokens": 2000,
    "completion_tokens": 10,
    "total_tokens": 2010,
    "cost": 0.0123456789,
    "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1800},
    "completion_tokens_details": {"reasoning_tokens": 4},
    "cost_details": {"upstream_inference_cost": None, "upstream_inference_prompt_cost": 0.0006},
    "server_tool_use_details": {"web_search_requests": 1},
}


def delta(finish_reason: str | None = None, **fields: object) -> dict:
    return {**CHUNK, "choices": [{"index": 0, "delta": fields, "finish_reason": finish_reason}]}


def test_every_new_piece_of_a_stream_becomes_its_event_in_order():
    decoder = ChunkDecoder("anthropic/claude-sonnet-4")
    events = []
    for chunk in [
        delta(reasoning="Hmm", reasoning_details=[DETAIL]),
        delta(reasoning="", reasoning_details=[SIGNED]),
        delta(content="Yes"),
        delta(content="", annotations=[CITATION]),
        delta(content="", images=[{"type": "image_url", "image_url": {"url": IMAGE}}]),
        delta(finish_reason="stop", content=""),
        {**CHUNK, "choices": [], "usage": USAGE},
    ]:
        events += decoder.feed(sse(chunk)[6:-2])
    events += decoder.feed(b"[DONE]")
    assert events == [
        Started("gen-1-abc", "anthropic/claude-sonnet-4", "Anthropic"),
        ReasoningDelta("Hmm", (DETAIL,)),
        ReasoningDelta("", (SIGNED,)),
        TextDelta("Yes"),
        Annotations((CITATION,)),
        ImageOut(IMAGE),
        Finish("stop", None),
        events[-1],
    ]
    usage = events[-1]
    assert isinstance(usage, Usage)
    assert usage.cost == Decimal("0.0123456789")
    assert usage.cache_write_tokens == 1800 and usage.reasoning_tokens == 4
    assert usage.cost_details == {"upstream_inference_cost": None, "upstream_inference_prompt_cost": "0.0006"}
    assert usage.server_tool_use == {"web_search_requests": 1}


def test_reasoning_details_alone_still_make_a_reasoning_event():
    decoder = ChunkDecoder("m")
    events = decoder.feed(sse(delta(reasoning_details=[SIGNED]))[6:-2])
    assert events[1:] == [ReasoningDelta("", (SIGNED,))]


async def test_a_non_streamed_body_keeps_details_annotations_and_images():
    message = {
        "role": "assistant",
        "content": "Yes",
        "reasoning": "Hmm",
        "reasoning_details": [DETAIL, "junk"],
        "annotations": [CITATION],
        "images": [{"type": "image_url", "image_url": {"url": IMAGE}}],
    }
    body = {**CHUNK, "choices": [{"index": 0, "finish_reason": "stop", "message": message}], "usage": USAGE}
    client = mock_client(lambda request: httpx.Response(200, json=body))
    result = await client.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert result.reasoning_details == [DETAIL]
    assert result.annotations == [CITATION]
    assert result.images == [IMAGE]
    assert result.usage is not None and result.usage.cache_write_tokens == 1800


def test_a_responses_stream_decodes_to_the_chat_events():
    decoder = ResponsesDecoder("openai/gpt-4o-mini")
    response = {"id": "gen-9-x", "model": "openai/gpt-4o-mini", "provider": "OpenAI", "status": "in_progress"}
    usage = {
        "input_tokens": 8,
        "output_tokens": 3,
        "total_tokens": 11,
        "cost": 0.000003,
        "output_tokens_details": {"reasoning_tokens": 1},
    }
    events = []
    for data in [
        {"type": "response.created", "response": response},
        {"type": "response.reasoning.delta", "delta": "hm"},
        {"type": "response.output_text.delta", "delta": "hi"},
        {
            "type": "response.output_item.done",
            "item": {"type": "message", "content": [{"type": "output_text", "text": "hi", "annotations": [CITATION]}]},
        },
        {"type": "response.mystery"},
        {"type": "response.completed", "response": {**response, "status": "completed", "usage": usage}},
    ]:
        events += decoder.feed(sse(data)[6:-2])
    assert events[:4] == [
        Started("gen-9-x", "openai/gpt-4o-mini", "OpenAI"),
        ReasoningDelta("hm"),
        TextDelta("hi"),
        Annotations((CITATION,)),
    ]
    assert isinstance(events[4], Usage) and events[4].prompt_tokens == 8 and events[4].reasoning_tokens == 1
    assert events[4].cost == Decimal("0.000003")
    assert events[5] == Finish("stop", "completed")
    assert decoder.over


def test_a_failed_response_is_a_stream_error():
    decoder = ResponsesDecoder("m")
    decoder.feed(sse({"type": "response.created", "response": {"id": "gen-1"}})[6:-2])
    failed = {
        "type": "response.failed",
        "response": {"id": "gen-1", "error": {"code": 502, "message": "Provider returned error"}},
    }
    [error] = decoder.feed(sse(failed)[6:-2])
    assert isinstance(error, StreamError) and error.error.code == 502


async def test_the_simulator_streams_reasoning_details_that_match_the_message(openrouter_client):
    body = {
        "model": "anthropic/claude-sonnet-4",
        "messages": [{"role": "user", "content": "think"}],
        "reasoning": {"effort": "low"},
    }
    events = await collect(openrouter_client, body)
    reasoning = [e for e in events if isinstance(e, ReasoningDelta)]
    text = "".join(e.text for e in reasoning)
    assert text
    assert [d["text"] for e in reasoning for d in e.details if d.get("text")] == [e.text for e in reasoning if e.text]
    assert reasoning[-1].details[0]["signature"]
    answer = await openrouter_client.chat(body)
    assert answer.reasoning == text
    assert answer.reasoning_details[0]["signature"] == reasoning[-1].details[0]["signature"]


async def test_embeddings_and_responses_come_back_billed(openrouter_client, sim):
    seen: list[tuple[str, str]] = []
    embedded = await openrouter_client.embeddings(
        {
            "model": "openai/text-embedding-3-small",
            "input": ["a b c", "d"],
            "encoding_format": "base64",
            "dimensions": 8,
        },
        observe=lambda generation, model: seen.append((generation, model)),
    )
    assert seen == [(embedded.generation_id, "openai/text-embedding-3-small")]
    assert len(base64.b64decode(embedded.raw["data"][0]["embedding"])) == 8 * 4
    assert embedded.usage is not None and embedded.usage.cost == sim.generations[embedded.generation_id].cost
    answered = await openrouter_client.responses({"model": "openai/gpt-4o-mini", "input": "echo: hi there"})
    assert answered.raw["output"][-1]["content"][0]["text"] == "hi there"
    assert answered.usage is not None and answered.usage.cost == sim.generations[answered.generation_id].cost
    async with openrouter_client.stream_responses({"model": "openai/gpt-4o-mini", "input": "echo: one two"}) as stream:
        events = [event async for event in stream]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two"
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.cost == sim.generations[stream.generation_id].cost


@pytest.mark.parametrize("kind", ["store", "previous_response_id"])
async def test_the_simulator_refuses_stateful_responses(openrouter_client, kind):
    from openrouter import BadRequest

    with pytest.raises(BadRequest):
        await openrouter_client.responses(
            {"model": "openai/gpt-4o-mini", "input": "hi", kind: True if kind == "store" else "resp_1"}
        )

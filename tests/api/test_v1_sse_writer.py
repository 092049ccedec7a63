"""The /v1 stream body: chat.completion.chunk events in OpenAI's order, the settled cost last."""

from __future__ import annotations

from decimal import Decimal

from gateway.sse_writer import ChunkWriter
from gateway.types import CallResult
from openrouter.events import Finish, Started, TextDelta, ToolCallDelta, Usage


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

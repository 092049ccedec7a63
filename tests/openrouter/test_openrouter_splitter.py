"""The byte-level SSE splitter, chunk parsing, and the stream's idle watchdog, tested directly."""

from __future__ import annotations

import asyncio
import json
import math
from decimal import Decimal

import httpx
import pytest

from openrouter import Finish, IdleTimeout, StreamError, TextDelta, Usage
from openrouter.sse import ChunkDecoder, EventSplitter, parse_chunk
from tests.helpers.openrouter import BODY, mock_client, sse

CHUNK = {"id": "gen-1", "model": "openai/gpt-4o-mini", "provider": "OpenAI"}


def delta(content: str, finish_reason: str | None = None) -> dict:
    return {**CHUNK, "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish_reason}]}


USAGE = {**CHUNK, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "cost": 0.1000000000000001}}

SAMPLE = sse(
    ": OPENROUTER PROCESSING\n\n",
    delta("Héllo 🌍"),
    ": OPENROUTER PROCESSING\n\n",
    'event: message\nid: 7\nretry: 100\ndata: {"a":\n: a comment inside an event\ndata: 1}\n\n',
    delta(", world", "stop"),
    USAGE,
    "data: [DONE]\n\n",
)


def datas_of(pieces: list[bytes]) -> list[bytes]:
    splitter = EventSplitter()
    return [data for piece in pieces for data in splitter.feed(piece)]


def test_it_yields_the_data_of_each_event_and_drops_comments_and_other_fields():
    assert datas_of([SAMPLE]) == [
        json.dumps(delta("Héllo 🌍")).encode(),
        b'{"a":\n1}',
        json.dumps(delta(", world", "stop")).encode(),
        json.dumps(USAGE).encode(),
        b"[DONE]",
    ]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_it_gives_the_same_events_at_every_split_point(line_end):
    stream = SAMPLE.replace(b"\n", line_end)
    whole = datas_of([SAMPLE])
    for cut in range(len(stream) + 1):
        assert datas_of([stream[:cut], stream[cut:]]) == whole, cut


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_it_gives_the_same_events_one_byte_at_a_time(line_end):
    stream = SAMPLE.replace(b"\n", line_end)
    assert datas_of([stream[i : i + 1] for i in range(len(stream))]) == datas_of([SAMPLE])


def test_a_crlf_split_between_its_cr_and_lf_is_one_line_end():
    assert datas_of([b"data: 1\r\n\r", b"\ndata: 2\r", b"\n\r\n"]) == [b"1", b"2"]


def test_it_accepts_data_without_a_space_and_a_bare_data_line():
    assert datas_of([b"data:{}\n\ndata\ndata:x\n\n"]) == [b"{}", b"\nx"]


def test_events_without_data_and_blank_lines_never_come_out():
    assert datas_of([b"\n\n\n: keep-alive\n\nevent: ping\n\ndata:\n\ndata: \n\n"]) == []


def test_an_event_the_stream_ends_in_the_middle_of_never_comes_out():
    assert datas_of([b"data: 1\n\ndata: 2\n"]) == [b"1"]


def test_a_chunk_with_usage_has_an_exact_decimal_cost():
    chunk = parse_chunk(json.dumps(USAGE).encode())
    assert chunk["usage"]["cost"] == Decimal("0.1000000000000001")
    assert isinstance(chunk["usage"]["cost"], Decimal)


def test_a_chunk_without_usage_is_parsed_as_is():
    assert parse_chunk(json.dumps(delta("hi")).encode()) == delta("hi")
    assert parse_chunk(b'{"usage": null, "n": 1}') == {"usage": None, "n": 1}


def test_what_only_the_standard_library_accepts_is_still_parsed():
    assert math.isnan(parse_chunk(b'{"n": NaN}')["n"])
    assert math.isnan(parse_chunk(b'{"usage": {"cost": NaN}}')["usage"]["cost"])


def test_what_is_not_json_is_a_value_error():
    with pytest.raises(ValueError):
        parse_chunk(b"{not json")


def test_the_decoder_takes_bytes_and_keeps_usage_after_the_finish():
    decoder = ChunkDecoder("m")
    events = [event for data in datas_of([SAMPLE]) for event in decoder.feed(data)]
    assert events[1:] == [
        TextDelta("Héllo 🌍"),
        TextDelta(", world"),
        Finish("stop", None),
        Usage(3, 2, 5, Decimal("0.1000000000000001"), 0, 0),
    ]
    assert decoder.over


def _slow_stream(*pieces: tuple[float, bytes]) -> httpx.Response:
    async def body():
        for delay, piece in pieces:
            await asyncio.sleep(delay)
            yield piece

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


def _events_client(*pieces: tuple[float, bytes], idle_timeout: float):
    return mock_client(lambda request: _slow_stream(*pieces), idle_timeout=idle_timeout)


async def test_comments_do_not_reset_the_idle_timeout():
    comments = [(0.05, b": OPENROUTER PROCESSING\n\n")] * 20
    pieces = [(0, sse(delta("a"))), *comments, (0, sse(delta("b", "stop")))]
    async with _events_client(*pieces, idle_timeout=0.3) as client, client.stream(BODY) as events:
        received = [event async for event in events]
    assert TextDelta("b") not in received
    assert isinstance(received[-1], StreamError)
    assert isinstance(received[-1].error, IdleTimeout)


async def test_each_data_event_restarts_the_idle_timeout():
    pieces = [(0, sse(delta("a"))), *[(0.1, sse(delta("x")))] * 6, (0, sse(delta("b", "stop")))]
    async with _events_client(*pieces, idle_timeout=0.3) as client, client.stream(BODY) as events:
        received = [event async for event in events]
    assert received[-1] == Finish("stop", None)


async def test_time_spent_outside_a_read_does_not_count_as_idle():
    pieces = [(0, sse(delta("a"))), (0, sse(delta("b"))), (0, sse(delta("c", "stop")))]
    async with _events_client(*pieces, idle_timeout=0.2) as client, client.stream(BODY) as events:
        received = []
        async for event in events:
            received.append(event)
            await asyncio.sleep(0.3)
    assert received[-1] == Finish("stop", None)


async def test_cancelling_the_reader_is_not_mistaken_for_an_idle_timeout():
    pieces = [(0, sse(delta("a"))), (30, sse(delta("b", "stop")))]

    async def read() -> None:
        async with _events_client(*pieces, idle_timeout=60) as client, client.stream(BODY) as events:
            async for _ in events:
                pass

    task = asyncio.create_task(read())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

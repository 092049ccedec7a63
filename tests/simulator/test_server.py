"""Over a real socket: the official openai SDK consumes the simulator, and disconnects are noticed."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.helpers.simulator import KEY, chat


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def sdk(sim_server) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=sim_server.base_url, max_retries=0)


def test_the_openai_sdk_reads_a_completion(sim_server):
    completion = sdk(sim_server).chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "echo: hello sdk"}], max_tokens=50
    )
    assert completion.choices[0].message.content == "hello sdk"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "openai/gpt-4o"
    assert completion.usage.completion_tokens == 3
    assert completion.usage.model_extra["cost"] > 0


def test_the_openai_sdk_reads_a_completion_kept_alive_with_whitespace(sim_server):
    sim_server.sim.update_config(ttft=0.3)
    completion = sdk(sim_server).chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "echo: after a wait"}], max_tokens=50
    )
    assert completion.choices[0].message.content == "after a wait"


def test_the_openai_sdk_reads_a_stream(sim_server):
    stream = sdk(sim_server).chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "echo: streaming through the sdk"}],
        max_tokens=50,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streaming through the sdk"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.total_tokens > 0


def test_the_openai_sdk_reads_streamed_tool_calls(sim_server):
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    stream = sdk(sim_server).chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": 'call:lookup({"q": "sdk"})'}],
        tools=tools,
        stream=True,
    )
    arguments = ""
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += call.function.arguments or ""
    assert arguments == '{"q":"sdk"}'


def test_the_openai_sdk_sees_errors_with_their_status(sim_server):
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(sim_server).chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi [[sim status=429]]"}]
        )
    assert caught.value.status_code == 429


def test_a_stream_closed_by_the_client_is_recorded_as_cancelled(sim_server):
    sim_server.sim.update_config(tps=50)
    body = chat("[[sim tokens=500]] go on", max_tokens=1000, stream=True)
    with (
        httpx.Client(base_url=sim_server.base_url, headers={"Authorization": f"Bearer {KEY}"}) as sim_client,
        sim_client.stream("POST", "/chat/completions", json=body) as response,
    ):
        generation_id = response.headers["x-generation-id"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                break
    wait_for(lambda: sim_server.sim.stats()["cancelled_streams"] == 1)
    generation = sim_server.sim.generations[generation_id]
    assert generation.cancelled
    assert 1 <= generation.tokens_completion < 500
    assert sim_server.sim.stats()["open_streams"] == 0


def test_a_dropped_stream_breaks_the_connection(sim_server):
    body = chat("echo: one two three four [[sim drop_after=2]]", stream=True)
    with (
        httpx.Client(base_url=sim_server.base_url, headers={"Authorization": f"Bearer {KEY}"}) as sim_client,
        sim_client.stream("POST", "/chat/completions", json=body) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        response.read()

"""What the simulator billed, listed at once on ``/_sim/billed``: every way a generation can end, including
clients that leave, is billed the way OpenRouter bills it, and ``/generation`` agrees."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest

from tests.helpers.simulator import KEY, chat


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def socket_client(server, **options) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, **options)


def listed(server) -> dict[str, dict]:
    listing = httpx.get(f"{server.root}/_sim/billed").json()
    return {generation["id"]: generation for generation in listing["data"]}


def pricing(server, model: str) -> dict[str, Decimal]:
    with socket_client(server) as client:
        models = client.get("/models").json()["data"]
    return {k: Decimal(v) for k, v in next(m for m in models if m["id"] == model)["pricing"].items()}


async def test_every_billed_generation_is_listed_with_its_exact_cost_at_once(sim_client, control, sim):
    sim.update_config(generation_delay=60)
    plain = await sim_client.post("/chat/completions", json=chat("echo: one two three", model="openai/gpt-4o"))
    streamed = await sim_client.post(
        "/chat/completions", json=chat("echo: four five", model="openai/gpt-4.1-nano", stream=True)
    )
    free = await sim_client.post("/chat/completions", json=chat("echo: six", model="deepseek/deepseek-r1:free"))
    listing = (await control.get("/billed")).json()
    assert listing["in_flight"] == 0
    by_id = {generation["id"]: generation for generation in listing["data"]}
    ids = [response.headers["x-generation-id"] for response in (plain, streamed, free)]
    assert list(by_id) == ids
    assert (await sim_client.get("/generation", params={"id": ids[0]})).status_code == 404
    models = {m["id"]: m for m in (await sim_client.get("/models")).json()["data"]}
    for generation in by_id.values():
        prices = {k: Decimal(v) for k, v in models[generation["model"]]["pricing"].items()}
        expected = (
            generation["tokens_prompt"] * prices["prompt"] + generation["tokens_completion"] * prices["completion"]
        )
        assert Decimal(generation["cost"]) == expected
        assert "E" not in generation["cost"]
    first = by_id[ids[0]]
    assert first == {
        "id": ids[0],
        "model": "openai/gpt-4o",
        "provider": "OpenAI",
        "cost": first["cost"],
        "tokens_prompt": plain.json()["usage"]["prompt_tokens"],
        "tokens_completion": 4,
        "cancelled": False,
        "streamed": False,
        "finish_reason": "stop",
    }
    assert by_id[ids[1]]["streamed"] is True
    assert by_id[ids[2]]["cost"] == "0"


async def test_reset_forgets_what_was_billed_and_a_non_streamed_reply_in_flight(sim_client, control, sim):
    await sim_client.post("/chat/completions", json=chat())
    pending = asyncio.create_task(sim_client.post("/chat/completions", json=chat("[[sim ttft=0.3]] slow")))
    while not sim.in_flight:
        await asyncio.sleep(0.01)
    assert (await control.post("/reset")).status_code == 204
    with pytest.raises(httpx.RemoteProtocolError):
        await pending
    assert (await control.get("/billed")).json() == {"data": [], "in_flight": 0}


async def test_a_stream_that_ends_after_a_reset_is_not_billed_into_the_new_world(sim_client, control, sim):
    pending = asyncio.create_task(sim_client.post("/chat/completions", json=chat("[[sim ttft=0.3]] slow", stream=True)))
    while not sim.in_flight:
        await asyncio.sleep(0.01)
    assert (await control.post("/reset")).status_code == 204
    assert (await pending).text.endswith("data: [DONE]\n\n")
    assert (await control.get("/billed")).json() == {"data": [], "in_flight": 0}
    assert sim.open_streams == 0


@pytest.mark.parametrize("leave", ["close", "read_timeout"])
def test_a_non_streamed_reply_the_client_abandons_is_billed_in_full(sim_server, leave):
    sim_server.sim.update_config(generation_delay=0.2, keepalive_interval=5 if leave == "read_timeout" else 0.05)
    body = chat("a considered answer [[sim tokens=40 ttft=0.5]]")
    with socket_client(sim_server, timeout=httpx.Timeout(5, read=0.1)) as client:
        with client.stream("POST", "/chat/completions", json=body) as response:
            generation_id = response.headers["x-generation-id"]
            if leave == "read_timeout":
                with pytest.raises(httpx.ReadTimeout):
                    response.read()
        assert generation_id not in listed(sim_server)
        wait_for(lambda: generation_id in listed(sim_server))
        generation = listed(sim_server)[generation_id]
        whole = client.post("/chat/completions", json=body, timeout=5).json()
        assert generation["tokens_completion"] == whole["usage"]["completion_tokens"] >= 40
        assert Decimal(generation["cost"]) == Decimal(str(whole["usage"]["cost"]))
        assert (generation["cancelled"], generation["finish_reason"]) == (False, "stop")
        for _ in range(100):
            answer = client.get("/generation", params={"id": generation_id})
            if answer.status_code == 200:
                break
            time.sleep(0.05)
    record = answer.json()["data"]
    assert record["tokens_completion"] == generation["tokens_completion"]
    assert Decimal(str(record["total_cost"])) == Decimal(generation["cost"])
    assert record["cancelled"] is False


@pytest.mark.parametrize(
    ("fault", "read_until"),
    [
        ("ttft=30", ": OPENROUTER PROCESSING"),
        ("stall=30", ": OPENROUTER PROCESSING"),
        ("tokens=500 tps=50", "data: "),
    ],
    ids=["before-the-first-token", "stalled-before-the-first-token", "mid-stream"],
)
def test_a_stream_the_client_closes_pays_for_what_was_sent_and_nothing_before_a_token(sim_server, fault, read_until):
    body = chat(f"tell me more [[sim {fault}]]", model="openai/gpt-4o", max_tokens=1000, stream=True)
    with socket_client(sim_server) as client, client.stream("POST", "/chat/completions", json=body) as response:
        generation_id = response.headers["x-generation-id"]
        for line in response.iter_lines():
            if line.startswith(read_until):
                break
    wait_for(lambda: generation_id in listed(sim_server))
    generation = listed(sim_server)[generation_id]
    assert (generation["cancelled"], generation["streamed"], generation["finish_reason"]) == (True, True, None)
    tokens = generation["tokens_completion"]
    assert (tokens == 0) if read_until.startswith(":") else (1 <= tokens < 500)
    prices = pricing(sim_server, "openai/gpt-4o")
    # No completion token and a blank finish reason: not charged.
    expected = generation["tokens_prompt"] * prices["prompt"] + tokens * prices["completion"] if tokens else 0
    assert Decimal(generation["cost"]) == expected
    assert sim_server.sim.open_streams == 0


def test_a_client_gone_before_the_first_byte_is_never_generated_for(sim_server):
    with socket_client(sim_server, timeout=0.1) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/chat/completions", json=chat("[[sim first_byte_delay=0.4]] hello?"))
    wait_for(lambda: sim_server.sim.requests["openai/gpt-4o"] == 1)  # past the delay: the model was chosen
    assert httpx.get(f"{sim_server.root}/_sim/billed").json() == {"data": [], "in_flight": 0}


@pytest.mark.parametrize("model", ["mistralai/mistral-small-3.2-24b-instruct", "google/gemini-2.5-flash"])
def test_a_provider_that_cannot_be_stopped_bills_the_whole_reply_when_the_client_closes(sim_server, model):
    body = chat("tell me more", model=model, max_tokens=1000, stream=True)
    with socket_client(sim_server) as client:
        slow = {"X-Sim-Fault": "tokens=500 tps=50"}
        with client.stream("POST", "/chat/completions", json=body, headers=slow) as response:
            generation_id = response.headers["x-generation-id"]
            for line in response.iter_lines():
                if line.startswith("data: "):
                    break
        wait_for(lambda: generation_id in listed(sim_server))
        whole = client.post(
            "/chat/completions", json={**body, "stream": False}, headers={"X-Sim-Fault": "tokens=500"}, timeout=30
        ).json()["usage"]
    generation = listed(sim_server)[generation_id]
    assert (generation["cancelled"], generation["finish_reason"]) == (True, "stop")
    assert generation["tokens_completion"] == whole["completion_tokens"] >= 500
    assert Decimal(generation["cost"]) == Decimal(str(whole["cost"]))
    assert sim_server.sim.open_streams == 0

"""A non-streamed reply: status and headers at once, whitespace while it is generated, then the JSON; a
failure after the headers went out is a 200 error body or a dropped connection, billed for what was made."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers.simulator import KEY, chat


async def billed(control: httpx.AsyncClient) -> dict[str, dict]:
    listing = (await control.get("/billed")).json()
    return {generation["id"]: generation for generation in listing["data"]}


def test_the_headers_come_at_once_then_whitespace_then_the_json(sim_server):
    sim_server.sim.update_config(ttft=0.5)
    with (
        httpx.Client(base_url=sim_server.base_url, headers={"Authorization": f"Bearer {KEY}"}) as client,
        client.stream("POST", "/chat/completions", json=chat("echo: worth the wait")) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        generation_id = response.headers["x-generation-id"]
        pieces = response.iter_raw()
        first = next(pieces)
        assert generation_id in sim_server.sim.in_flight, "the headers came before the reply was generated"
        assert generation_id not in sim_server.sim.generations
        body = first + b"".join(pieces)
    assert first.strip() == b""
    assert body.lstrip() != body
    assert set(body[: len(body) - len(body.lstrip())]) == {ord("\n")}
    data = json.loads(body)
    assert data["id"] == generation_id
    assert data["choices"][0]["message"]["content"] == "worth the wait"


async def test_whitespace_keeps_the_connection_alive_and_the_json_still_parses(sim_client, sim):
    sim.update_config(ttft=0.2)
    response = await sim_client.post("/chat/completions", json=chat("echo: alive"))
    assert response.status_code == 200
    assert response.content.startswith(b"\n")
    assert response.json()["choices"][0]["message"]["content"] == "alive"


async def test_without_a_wait_there_is_no_whitespace(sim_client):
    response = await sim_client.post("/chat/completions", json=chat("echo: at once"))
    assert response.content.startswith(b"{")


async def test_an_error_after_the_headers_is_a_200_error_body_billed_for_what_was_made(sim_client, control):
    response = await sim_client.post(
        "/chat/completions", json=chat("echo: one two three four"), headers={"X-Sim-Fault": "error_after=2 ttft=0.1"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "error": {"code": 502, "message": "Provider returned error", "metadata": {"error_type": "provider_unavailable"}}
    }
    generation = (await billed(control))[response.headers["x-generation-id"]]
    assert (generation["tokens_completion"], generation["finish_reason"]) == (2, "error")
    assert generation["cancelled"] is False


async def test_the_error_code_is_the_faults(sim_client):
    response = await sim_client.post(
        "/chat/completions", json=chat(), headers={"X-Sim-Fault": "error_after=0 error_code=429"}
    )
    assert response.status_code == 200
    assert response.json()["error"]["metadata"]["error_type"] == "rate_limit_exceeded"


async def test_an_error_beyond_the_end_of_the_reply_never_happens(sim_client):
    response = await sim_client.post(
        "/chat/completions", json=chat("echo: short"), headers={"X-Sim-Fault": "error_after=50"}
    )
    assert response.json()["choices"][0]["message"]["content"] == "short"


async def test_a_drop_after_the_headers_cuts_the_connection_and_bills_what_was_made(sim_client, control, sim):
    with pytest.raises(httpx.RemoteProtocolError):
        await sim_client.post(
            "/chat/completions", json=chat("echo: one two three four"), headers={"X-Sim-Fault": "drop_after=3"}
        )
    [generation] = (await billed(control)).values()
    assert (generation["tokens_completion"], generation["finish_reason"]) == (3, None)
    assert sim.in_flight == {}


def test_a_drop_cuts_a_real_connection(sim_server):
    with (
        httpx.Client(base_url=sim_server.base_url, headers={"Authorization": f"Bearer {KEY}"}) as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.post("/chat/completions", json=chat("echo: a b c [[sim drop_after=1 ttft=0.1]]"))


async def test_a_malformed_reply_is_truncated_json_billed_in_full(sim_client, control):
    whole = await sim_client.post("/chat/completions", json=chat("echo: cut in half"))
    response = await sim_client.post(
        "/chat/completions", json=chat("echo: cut in half"), headers={"X-Sim-Fault": "malformed_after=1"}
    )
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    generation = (await billed(control))[response.headers["x-generation-id"]]
    assert generation["tokens_completion"] == whole.json()["usage"]["completion_tokens"]
    assert generation["finish_reason"] == "stop"


async def test_errors_found_before_generating_keep_their_status_and_bill_nothing(sim_client, control):
    assert (
        await sim_client.post("/chat/completions", json=chat(), headers={"X-Sim-Fault": "status=503"})
    ).status_code == 503
    assert (await sim_client.post("/chat/completions", json=chat(temperature=5))).status_code == 400
    assert (await billed(control)) == {}

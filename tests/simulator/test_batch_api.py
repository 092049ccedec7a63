"""OpenRouter's Batch API (beta) in the simulator, and the client for it (`openrouter.batch_api`): 202
`validating` → `in_progress` → `completed`, results inline per custom_id, each answer billed at about half
the list price and recorded like any generation (`/_sim/billed`, `/generation`), a failed request billed
nothing; text models only; bad bodies answered 400 with OpenRouter's error JSON."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest

from openrouter import AuthenticationError, BadRequest, NotFound
from openrouter.batch_api import BatchApiClient, batches_url
from openrouter.simulator.batch_api import BATCH_RATE
from tests.helpers.simulator import KEY

TEXT_MODEL = "meta-llama/llama-3.1-8b-instruct"
URL = "http://sim/api/beta/batches"


def request(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "body": {"messages": [{"role": "user", "content": text}], "max_tokens": 60, **extra},
    }


def batch(*requests: dict[str, Any], model: str = TEXT_MODEL) -> dict[str, Any]:
    return {"endpoint": "/v1/chat/completions", "model": model, "requests": list(requests)}


@pytest.fixture
def quick(sim):
    sim.update_config(batch_delay=0.2)
    return sim


async def until_completed(client: httpx.AsyncClient, batch_id: str) -> tuple[dict[str, Any], list[str]]:
    """Poll the batch until it is completed; the last answer and every status seen, in order."""
    seen: list[str] = []
    for _ in range(500):
        answer = (await client.get(f"{URL}/{batch_id}")).json()
        if not seen or seen[-1] != answer["status"]:
            seen.append(answer["status"])
        if answer["status"] == "completed":
            return answer, seen
        await asyncio.sleep(0.01)
    raise AssertionError(f"never completed: {seen}")


async def test_a_batch_moves_to_completed_with_every_answer_billed_at_half_price(sim_client, control, quick):
    created = await sim_client.post(URL, json=batch(request("a", "first question"), request("b", "second one")))
    assert created.status_code == 202
    assert created.json()["status"] == "validating"
    assert created.json()["request_counts"] == {"total": 2, "completed": 0, "failed": 0}
    done, seen = await until_completed(sim_client, created.json()["id"])
    assert seen == ["validating", "in_progress", "completed"]
    assert done["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    assert done["completion_window"] == "24h" and done["expires_at"] == done["created_at"] + 24 * 3600
    model = quick.models[TEXT_MODEL]
    billed = {g["id"]: Decimal(g["cost"]) for g in (await control.get("/billed")).json()["data"]}
    assert [r["custom_id"] for r in done["results"]] == ["a", "b"]
    for result in done["results"]:
        body = result["response"]["body"]
        usage = body["usage"]
        list_price = usage["prompt_tokens"] * model.price("prompt") + usage["completion_tokens"] * model.price(
            "completion"
        )
        assert billed[body["id"]] == list_price * BATCH_RATE
        assert Decimal(str(usage["cost"])) == billed[body["id"]]
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
        generation = (await sim_client.get("/generation", params={"id": body["id"]})).json()["data"]
        assert Decimal(str(generation["total_cost"])) == billed[body["id"]]
    assert set(billed) == {r["response"]["body"]["id"] for r in done["results"]}


async def test_a_request_that_fails_is_reported_and_not_billed(sim_client, control, quick):
    created = await sim_client.post(URL, json=batch(request("ok", "fine"), request("bad", "[[sim status=503]] no")))
    done, _ = await until_completed(sim_client, created.json()["id"])
    by_id = {r["custom_id"]: r for r in done["results"]}
    assert by_id["bad"]["response"] is None and by_id["bad"]["error"]["code"] == 503
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    billed = [g["id"] for g in (await control.get("/billed")).json()["data"]]
    assert billed == [by_id["ok"]["response"]["body"]["id"]]


@pytest.mark.parametrize(
    "model",
    ["openai/gpt-4o-mini", "google/gemini-2.5-flash-image", "openai/text-embedding-3-small"],
    ids=["image-input", "image-output", "embeddings"],
)
async def test_only_text_models_are_served(sim_client, model):
    answer = await sim_client.post(URL, json=batch(request("a", "hi"), model=model))
    assert answer.status_code == 400
    assert answer.json() == {
        "error": {"code": 400, "message": f"{model} is not available through the Batch API: text models only"}
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "Invalid JSON body: expected an object"),
        ({**batch(request("a", "x")), "endpoint": "/v1/embeddings"}, 'endpoint: expected "/v1/chat/completions"'),
        ({**batch(request("a", "x")), "model": ""}, "model: required"),
        (batch(request("a", "x"), model="nobody/nothing"), "nobody/nothing is not a valid model ID"),
        (batch(), "requests: expected a non-empty array"),
        (batch({"body": {}}), "requests[0].custom_id: required"),
        (batch(request("a", "x"), request("a", "y")), "requests[1].custom_id: 'a' is used twice"),
        (batch({"custom_id": "a", "body": "text"}), "requests[0].body: expected an object"),
        (batch(request("a", "x", stream=True)), "requests[0].body.stream: a batch request can't stream"),
        (
            batch(request("a", "x", model="openai/gpt-3.5-turbo")),
            f"requests[0].body.model: must be the batch's model, {TEXT_MODEL}",
        ),
    ],
    ids=[
        "not-object",
        "endpoint",
        "no-model",
        "unknown-model",
        "no-requests",
        "no-custom-id",
        "duplicate",
        "body",
        "stream",
        "other-model",
    ],
)
async def test_bad_bodies_are_refused_with_openrouters_error(sim_client, control, body, message):
    answer = await sim_client.post(URL, json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": {"code": 400, "message": message}}
    assert (await control.get("/billed")).json()["data"] == []


async def test_a_key_is_required_and_unknown_batches_are_404(sim_app, sim_client):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim_app)) as anonymous:
        assert (await anonymous.post(URL, json=batch(request("a", "x")))).status_code == 401
    missing = await sim_client.get(f"{URL}/batch_nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Batch not found"


def test_the_batch_api_sits_beside_the_chat_api():
    assert batches_url("https://openrouter.ai/api/v1") == "https://openrouter.ai/api/beta/batches"
    assert batches_url("http://127.0.0.1:9000/api/v1/") == "http://127.0.0.1:9000/api/beta/batches"


async def test_the_client_submits_and_retrieves(sim_app, quick):
    transport = httpx.ASGITransport(app=sim_app)
    async with BatchApiClient(KEY, "http://sim/api/v1", transport=transport) as client:
        submitted = await client.submit(TEXT_MODEL, [request("q", "a question")])
        assert submitted["status"] == "validating"
        for _ in range(500):
            answer = await client.retrieve(submitted["id"])
            if answer["status"] == "completed":
                break
            await asyncio.sleep(0.01)
    [result] = answer["results"]
    assert isinstance(result["response"]["body"]["usage"]["cost"], Decimal)  # read exactly, never as a float


async def test_the_client_raises_the_main_clients_typed_errors(sim_app):
    transport = httpx.ASGITransport(app=sim_app)
    async with BatchApiClient(KEY, "http://sim/api/v1", transport=transport) as client:
        with pytest.raises(BadRequest, match="text models only"):
            await client.submit("openai/gpt-4o-mini", [request("q", "x")])
        with pytest.raises(NotFound):
            await client.retrieve("batch_nothing")
    async with BatchApiClient("not-a-key", "http://sim/api/v1", transport=transport) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.retrieve("batch_nothing")
    assert raised.value.status == 401


async def test_the_delay_is_a_config_knob_that_refuses_a_negative_value(control):
    assert (await control.patch("/config", json={"batch_delay": 0.3})).json()["batch_delay"] == 0.3
    refused = await control.patch("/config", json={"batch_delay": -1})
    assert refused.status_code == 400 and refused.json()["error"]["message"] == "batch_delay must be >= 0"

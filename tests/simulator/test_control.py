"""The ``/_sim`` endpoints change the simulated world at run time; each app has its own world."""

from __future__ import annotations

from openrouter.simulator import create_app
from tests.helpers.simulator import chat

NEW_MODEL = {
    "id": "acme/rocket-1",
    "canonical_slug": "acme/rocket-1",
    "name": "Acme: Rocket 1",
    "created": 1760000000,
    "description": "A test model.",
    "context_length": 8192,
    "architecture": {
        "modality": "text->text",
        "input_modalities": ["text"],
        "output_modalities": ["text"],
        "tokenizer": "Other",
        "instruct_type": None,
    },
    "pricing": {"prompt": "0.000001", "completion": "0.000002"},
    "top_provider": {"context_length": 8192, "max_completion_tokens": 1024, "is_moderated": False},
    "per_request_limits": None,
    "supported_parameters": ["max_tokens", "temperature"],
    "default_parameters": {},
    "knowledge_cutoff": None,
    "expiration_date": None,
}


async def model_ids(sim_client) -> list[str]:
    return [m["id"] for m in (await sim_client.get("/models")).json()["data"]]


async def test_models_can_be_added_updated_and_removed(sim_client, control):
    assert (await control.post("/models", json={"model": NEW_MODEL, "provider": "Acme Cloud"})).status_code == 200
    assert "acme/rocket-1" in await model_ids(sim_client)
    served = (await sim_client.post("/chat/completions", json=chat(model="acme/rocket-1"))).json()
    assert served["provider"] == "Acme Cloud"

    cheaper = {**NEW_MODEL, "pricing": {"prompt": "0", "completion": "0"}}
    await control.post("/models", json=cheaper)
    models = {m["id"]: m for m in (await sim_client.get("/models")).json()["data"]}
    assert models["acme/rocket-1"]["pricing"]["prompt"] == "0"

    assert (await control.delete("/models/acme/rocket-1")).status_code == 204
    assert "acme/rocket-1" not in await model_ids(sim_client)
    gone = await sim_client.post("/chat/completions", json=chat(model="acme/rocket-1"))
    assert gone.status_code == 400
    assert (await control.delete("/models/acme/rocket-1")).status_code == 404


async def test_the_catalog_can_be_replaced(sim_client, control):
    response = await control.put("/models", json=[NEW_MODEL])
    assert response.json() == {"models": ["acme/rocket-1"]}
    assert await model_ids(sim_client) == ["acme/rocket-1"]
    assert (await control.put("/models", json=[{"id": "no-pricing"}])).status_code == 400


async def test_config_can_be_patched(control, sim):
    response = await control.patch("/config", json={"ttft": 0.5, "tps": 3000, "credit_limit": "2.5"})
    assert response.json()["tps"] == 3000
    assert sim.config.ttft == 0.5
    assert str(sim.config.credit_limit) == "2.5"
    assert (await control.patch("/config", json={"warp": 9})).status_code == 400
    assert (await control.patch("/config", json={"tokens_per_chunk": 0})).status_code == 400


async def test_faults_can_be_set_and_cleared(sim_client, control):
    await control.post("/faults", json={"model": "openai/gpt-4o", "spec": "status=503 retry_after=2"})
    failed = await sim_client.post("/chat/completions", json=chat())
    assert failed.status_code == 503
    assert failed.headers["retry-after"] == "2"
    assert (await control.post("/faults", json={"model": "x", "spec": "bogus"})).status_code == 400
    assert (await control.delete("/faults", params={"model": "openai/gpt-4o"})).status_code == 204
    assert (await sim_client.post("/chat/completions", json=chat())).status_code == 200


async def test_stats_count_requests_and_generations(sim_client, control):
    await sim_client.post("/chat/completions", json=chat())
    await sim_client.post("/chat/completions", json=chat(stream=True))
    await sim_client.post("/chat/completions", json=chat(model="nope/nothing"))
    stats = (await control.get("/stats")).json()
    assert stats["requests"] == {"openai/gpt-4o": 2, "nope/nothing": 1}
    assert stats["requests_total"] == 3
    assert stats["generations"] == 2
    assert stats["cancelled_streams"] == 0
    assert stats["open_streams"] == 0


async def test_received_requests_are_kept_for_inspection(sim_client, control):
    await sim_client.post("/chat/completions", json=chat(user="u-1"), headers={"X-Title": "orweb"})
    [received] = (await control.get("/requests")).json()
    assert received["body"]["user"] == "u-1"
    assert received["headers"]["x-title"] == "orweb"
    assert "authorization" not in received["headers"]


async def test_reset_restores_the_initial_world(sim_client, control, sim):
    sim.set_fault("openai/gpt-4o", "status=500")
    sim.remove_model("openai/gpt-4o-mini")
    sim.update_config(credit_limit=1)
    await sim_client.post("/chat/completions", json=chat(model="anthropic/claude-3-haiku"))
    assert (await control.post("/reset")).status_code == 204
    assert sim.faults == {}
    assert "openai/gpt-4o-mini" in sim.models
    assert sim.config.credit_limit is None
    assert sim.stats()["generations"] == 0
    assert (await sim_client.get("/key")).json()["data"]["usage"] == 0


async def test_apps_do_not_share_state():
    first, second = create_app(), create_app()
    first.state.sim.set_fault("openai/gpt-4o", "status=503")
    assert second.state.sim.faults == {}


async def test_unknown_routes_answer_the_error_shape(sim_client):
    response = await sim_client.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404

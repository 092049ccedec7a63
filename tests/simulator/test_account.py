"""Auth, /generation, /key and the credit check."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from freezegun import freeze_time

from openrouter.simulator import SimulatorConfig, create_app
from tests.helpers.simulator import chat


async def test_a_missing_key_is_401_no_credentials(sim_client):
    response = await sim_client.post("/chat/completions", json=chat(), headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "No auth credentials found"}}


async def test_an_unknown_key_is_401_user_not_found(sim_client):
    response = await sim_client.get("/key", headers={"Authorization": "Bearer not-a-key"})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "User not found."}}


async def test_configured_keys_restrict_access():
    sim_app = create_app(SimulatorConfig(keys=("sk-or-v1-good",), ttft=0, tps=0))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim_app), base_url="http://sim/api/v1"
    ) as sim_client:
        good = await sim_client.get("/key", headers={"Authorization": "Bearer sk-or-v1-good"})
        other = await sim_client.get("/key", headers={"Authorization": "Bearer sk-or-v1-other"})
    assert good.status_code == 200
    assert other.status_code == 401


async def test_the_environment_restricts_keys_when_no_config_is_given(monkeypatch):
    monkeypatch.setenv("SIM_API_KEYS", "sk-or-a, sk-or-b")
    assert create_app().state.sim.config.keys == ("sk-or-a", "sk-or-b")


async def test_a_generation_is_not_found_until_the_delay_has_passed(sim_client, sim):
    sim.update_config(generation_delay=0.15)
    response = await sim_client.post("/chat/completions", json=chat("echo: four tokens ok"))
    generation_id = response.headers["x-generation-id"]
    early = await sim_client.get("/generation", params={"id": generation_id})
    assert early.status_code == 404
    assert early.json() == {"error": {"code": 404, "message": "Generation not found"}}
    for _ in range(50):
        later = await sim_client.get("/generation", params={"id": generation_id})
        if later.status_code == 200:
            break
        await asyncio.sleep(0.02)
    data = later.json()["data"]
    usage = response.json()["usage"]
    assert data["id"] == generation_id
    assert data["model"] == "openai/gpt-4o"
    assert data["provider_name"] == "OpenAI"
    assert data["streamed"] is False
    assert data["cancelled"] is False
    assert data["finish_reason"] == "stop"
    assert data["tokens_prompt"] == data["native_tokens_prompt"] == usage["prompt_tokens"]
    assert data["tokens_completion"] == data["native_tokens_completion"] == usage["completion_tokens"]
    assert data["total_cost"] == data["usage"] == usage["cost"]
    for key in [
        "cache_discount",
        "created_at",
        "latency",
        "generation_time",
        "native_finish_reason",
        "native_tokens_reasoning",
        "native_tokens_cached",
        "upstream_id",
    ]:
        assert key in data


async def test_an_unknown_generation_is_404(sim_client):
    assert (await sim_client.get("/generation", params={"id": "gen-1-nope"})).status_code == 404


async def test_a_streamed_generation_is_recorded(sim_client):
    response = await sim_client.post("/chat/completions", json=chat("echo: streamed", stream=True))
    data = (await sim_client.get("/generation", params={"id": response.headers["x-generation-id"]})).json()["data"]
    assert data["streamed"] is True
    assert data["tokens_completion"] == 2  # "stre", "amed"


async def test_key_usage_accumulates_generation_costs(sim_client, sim):
    sim.update_config(credit_limit=5)
    costs = []
    for prompt in ["one", "two", "three"]:
        response = await sim_client.post("/chat/completions", json=chat(prompt))
        costs.append(Decimal(str(response.json()["usage"]["cost"])))
    data = (await sim_client.get("/key")).json()["data"]
    assert Decimal(str(data["usage"])) == sum(costs)
    assert data["usage_daily"] == data["usage_weekly"] == data["usage_monthly"] == data["usage"]
    assert data["limit"] == 5
    assert Decimal(str(data["limit_remaining"])) == 5 - sum(costs)
    assert data["is_free_tier"] is False
    assert data["is_provisioning_key"] is False
    assert {"label", "limit_reset"} <= set(data)


async def test_an_unlimited_key_has_a_null_limit(sim_client):
    data = (await sim_client.get("/key")).json()["data"]
    assert data["limit"] is None
    assert data["limit_remaining"] is None


async def test_a_request_beyond_the_remaining_credit_is_402(sim_client, sim):
    sim.update_config(credit_limit="0.01")
    response = await sim_client.post("/chat/completions", json=chat(model="anthropic/claude-opus-4.1", max_tokens=1000))
    assert response.status_code == 402
    message = response.json()["error"]["message"]
    # 0.01 USD minus the prompt (6 tokens at 0.000015) leaves room for 132 tokens at 0.000075.
    assert message == (
        "This request requires more credits, or fewer max_tokens. You requested up to 1000 tokens, "
        "but can only afford 132. To increase, visit https://openrouter.ai/settings/credits and upgrade "
        "to a paid account"
    )
    fits = await sim_client.post("/chat/completions", json=chat(model="anthropic/claude-opus-4.1", max_tokens=100))
    assert fits.status_code == 200


async def test_without_max_tokens_the_credit_check_assumes_the_models_maximum(sim_client, sim):
    sim.update_config(credit_limit="1")
    body = chat(model="anthropic/claude-opus-4.1")
    del body["max_tokens"]
    response = await sim_client.post("/chat/completions", json=body)
    assert response.status_code == 402
    assert "You requested up to 32000 tokens" in response.json()["error"]["message"]


async def test_free_models_pass_the_credit_check(sim_client, sim):
    sim.update_config(credit_limit="0")
    assert (await sim_client.post("/chat/completions", json=chat(model="deepseek/deepseek-r1:free"))).status_code == 200


async def billed_costs(control) -> dict[str, Decimal]:
    return {g["id"]: Decimal(g["cost"]) for g in (await control.get("/billed")).json()["data"]}


async def key_usage(sim_client) -> dict[str, Decimal]:
    data = (await sim_client.get("/key")).json()["data"]
    return {name: Decimal(str(data[name])) for name in ("usage", "usage_daily", "usage_weekly", "usage_monthly")}


async def test_key_usage_counts_by_utc_day_iso_week_and_month_of_billing(sim_client, control):
    async def generation_at(moment: str) -> str:
        frozen.move_to(moment)
        response = await sim_client.post("/chat/completions", json=chat(f"at {moment}"))
        return response.headers["x-generation-id"]

    with freeze_time("2026-03-29 23:59:59", real_asyncio=True) as frozen:
        sunday = await generation_at("2026-03-29 23:59:59")  # ISO week 13, March
        monday = await generation_at("2026-03-30 00:00:00")  # week 14 starts
        wednesday = await generation_at("2026-04-01 10:00:00")  # week 14, April
        assert (await control.post("/usage", json={"amount": "0.5", "day": "2026-02-10"})).status_code == 204
        assert (await control.post("/usage", json={"amount": "0.25", "day": "2026-04-01"})).status_code == 204
        frozen.move_to("2026-04-01 23:59:59")
        assert (await control.post("/usage", json={"amount": 0.125})).status_code == 204  # today, by default
        cost = await billed_costs(control)
        other = Decimal("0.875")
        assert await key_usage(sim_client) == {
            "usage": cost[sunday] + cost[monday] + cost[wednesday] + other,
            "usage_daily": cost[wednesday] + Decimal("0.375"),
            "usage_weekly": cost[monday] + cost[wednesday] + Decimal("0.375"),
            "usage_monthly": cost[wednesday] + Decimal("0.375"),
        }
        frozen.move_to("2026-04-02 00:00:01")
        assert (await key_usage(sim_client))["usage_daily"] == 0
        assert (await key_usage(sim_client))["usage_weekly"] == cost[monday] + cost[wednesday] + Decimal("0.375")


async def test_unattributed_usage_spends_the_keys_credit(sim_client, control, sim):
    sim.update_config(credit_limit=2)
    assert (await control.post("/usage", json={"amount": "1.5"})).status_code == 204
    data = (await sim_client.get("/key")).json()["data"]
    assert (data["usage"], data["usage_daily"], data["limit_remaining"]) == (1.5, 1.5, 0.5)
    assert (await control.get("/billed")).json()["data"] == []


@pytest.mark.parametrize(
    "body", [{}, {"amount": "lots"}, {"amount": "-1"}, {"amount": "NaN"}, {"amount": "1", "day": "31/03"}, []]
)
async def test_unattributed_usage_must_be_an_amount_and_a_day(control, body):
    response = await control.post("/usage", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


async def test_reset_forgets_unattributed_usage(sim_client, control):
    await control.post("/usage", json={"amount": "3"})
    await control.post("/reset")
    assert (await sim_client.get("/key")).json()["data"]["usage"] == 0

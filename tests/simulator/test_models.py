"""GET /models serves a realistic catalog in OpenRouter's exact shape."""

from __future__ import annotations

from decimal import Decimal

MODEL_KEYS = {
    "id",
    "canonical_slug",
    "name",
    "created",
    "description",
    "context_length",
    "architecture",
    "pricing",
    "top_provider",
    "per_request_limits",
    "supported_parameters",
    "default_parameters",
    "knowledge_cutoff",
    "expiration_date",
}


async def fetch(sim_client) -> list[dict]:
    response = await sim_client.get("/models")
    assert response.status_code == 200
    return response.json()["data"]


async def test_it_needs_no_key(sim_client):
    response = await sim_client.get("/models", headers={"Authorization": ""})
    assert response.status_code == 200


async def test_every_model_has_the_real_shape(sim_client):
    models = await fetch(sim_client)
    assert len(models) >= 40
    for model in models:
        assert set(model) == MODEL_KEYS, model["id"]
        assert set(model["architecture"]) == {
            "modality",
            "input_modalities",
            "output_modalities",
            "tokenizer",
            "instruct_type",
        }
        assert set(model["top_provider"]) == {"context_length", "max_completion_tokens", "is_moderated"}
        assert {"prompt", "completion"} <= set(model["pricing"])
        for price in model["pricing"].values():
            assert isinstance(price, str)
            Decimal(price)


async def test_it_covers_the_variety_clients_must_handle(sim_client):
    models = {m["id"]: m for m in await fetch(sim_client)}
    vendors = {model_id.split("/")[0] for model_id in models}
    assert {
        "openai",
        "anthropic",
        "google",
        "meta-llama",
        "mistralai",
        "deepseek",
        "qwen",
        "x-ai",
        "cohere",
    } <= vendors

    free = [m for m in models.values() if m["id"].endswith(":free")]
    assert len(free) >= 3
    assert all(Decimal(m["pricing"]["prompt"]) == Decimal(m["pricing"]["completion"]) == 0 for m in free)

    assert any("image" in m["architecture"]["input_modalities"] for m in models.values())
    with_tools = [m for m in models.values() if "tools" in m["supported_parameters"]]
    assert with_tools and all("tool_choice" in m["supported_parameters"] for m in with_tools)
    assert any("tools" not in m["supported_parameters"] for m in models.values())

    assert any(m["expiration_date"] for m in models.values())
    assert any({"input_cache_read", "request"} <= set(m["pricing"]) for m in models.values())
    assert any(m["top_provider"]["max_completion_tokens"] is None for m in models.values())
    assert models["openrouter/auto"]["pricing"]["prompt"] == "-1"

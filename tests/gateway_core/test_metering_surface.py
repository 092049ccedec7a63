"""The wider surface through the metered path: the hold covers per-use fees (search, OCR pages, cache writes,
generated images), the price before Send is that hold and a likely cost, provider routing goes out with a
`max_price` no provider can exceed, and the ledger keeps what OpenRouter reported (cache and reasoning
tokens, cost details, server tools) at the cost it charged."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.budgets import set_budget
from billing.models import Hold, LedgerEntry
from billing.pricing import Fees, held_prompt_tokens, worst_case
from catalog.models import CatalogModel
from gateway import metered
from gateway.estimate import estimate
from gateway.fees import request_fees
from gateway.types import ChatRequest
from openrouter.fees import OCR_PAGE, exa_search_fee
from orweb.errors import BudgetExceeded, InvalidRequest, ModelNotAllowed, UpstreamFailed
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import ask, in_thread, upstream_bodies, upstream_calls
from tests.helpers.pdfs import pdf_part

pytestmark = pytest.mark.django_db(transaction=True)

LLAMA = "meta-llama/llama-3.1-8b-instruct"
SEARCH = {"tools": [{"type": "openrouter:web_search", "max_results": 12}]}
OCR = {"plugins": [{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}]}


def _pdf_request(model: str = LLAMA, pages: int = 4, **params) -> ChatRequest:
    content = [{"type": "text", "text": "Summarise this"}, pdf_part(pages)]
    return ChatRequest(model=model, messages=[{"role": "user", "content": content}], max_tokens=100, params=params)


def _entries() -> list[LedgerEntry]:
    return list(LedgerEntry.objects.order_by("pk"))


def _model(model_id: str) -> CatalogModel:
    return CatalogModel.objects.get(pk=model_id)


def test_fees_are_measured_from_the_request(catalog):
    fees = request_fees(_pdf_request(pages=3).messages, {**SEARCH, **OCR, "modalities": ["image", "text"]}, 500)
    assert (fees.web_searches, fees.web_results, fees.pdf_pages, fees.pdf_engine, fees.images_out) == (
        1,
        12,
        3,
        "mistral-ocr",
        1,
    )
    llama = _model(LLAMA)
    assert fees.per_use(llama) == exa_search_fee(12) + 3 * OCR_PAGE
    native = _model("openai/gpt-4.1-mini")
    assert Fees(web_searches=1).per_use(native) == Decimal("0.01")
    assert Fees(web_searches=1, web_engine="exa").per_use(native) == Decimal("0.007")
    assert Fees(pdf_pages=2).per_use(native) == 0  # native file input: no OCR by default
    assert Fees(pdf_pages=2).per_use(llama) == 2 * OCR_PAGE  # no file input: OpenRouter's default is OCR
    image = _model("google/gemini-2.5-flash-image")
    assert Fees(images_out=1).per_use(image) == Decimal("0.039") and Fees(images_out=1).per_use(llama) == 0


def test_the_hold_covers_cache_writes_at_their_price(catalog):
    haiku = _model("anthropic/claude-3.5-haiku")
    plain = worst_case(haiku, 2000, 10)
    five = worst_case(haiku, 2000, 10, fees=Fees(cache_write_tokens=2000))
    hour = worst_case(haiku, 2000, 10, fees=Fees(cache_write_tokens=2000, cache_ttl="1h"))
    held = held_prompt_tokens(2000)
    assert five - plain == held * (Decimal("0.000001") - Decimal("0.0000008"))
    assert hour - plain == held * Decimal("0.0000008")
    assert worst_case(_model(LLAMA), 2000, 10, fees=Fees(cache_write_tokens=2000)) == worst_case(
        _model(LLAMA), 2000, 10
    )


def test_the_estimate_is_the_hold_and_a_likely_cost_with_the_fees_and_the_budget_left(catalog, owner):
    set_budget(user=owner, amount=Decimal("1"))
    request = _pdf_request(pages=2, **SEARCH, **OCR)
    shown = estimate(owner, request)
    llama = _model(LLAMA)
    fees = exa_search_fee(12) + 2 * OCR_PAGE
    assert shown.fees == fees
    assert shown.high == worst_case(
        llama, shown.prompt_tokens, 100, 0, request_fees(request.messages, request.params, shown.prompt_tokens)
    )
    assert fees < shown.low < shown.high
    assert shown.remaining == Decimal("1") - shown.high
    assert estimate(owner, ask()).remaining is not None
    with pytest.raises(InvalidRequest):
        estimate(owner, ask(model="openai/text-embedding-3-small"))


async def test_a_search_over_ocr_is_held_in_full_and_settled_at_the_reported_cost(simulator, catalog, owner):
    await in_thread(set_budget)(user=owner, amount=Decimal("5"))
    request = _pdf_request(pages=3, **SEARCH, **OCR)
    expected_hold = await in_thread(lambda: estimate(owner, request).high)()
    completion = await metered.complete(owner, request, source="chat")
    [entry] = await in_thread(_entries)()
    hold = await in_thread(Hold.objects.get)()
    assert hold.amount == expected_hold and hold.amount >= entry.cost
    assert entry.cost > exa_search_fee(12) + 3 * OCR_PAGE
    assert entry.cost_details["server_tool_use_details"] == {"web_search_requests": 1}
    assert set(entry.cost_details) >= {"upstream_inference_cost", "upstream_inference_prompt_cost"}
    assert [a["type"] for a in completion.annotations].count("url_citation") == 12
    await in_thread(assert_ledger_matches_simulator)(simulator)


async def test_a_budget_too_small_for_the_fee_refuses_before_any_call(simulator, catalog, owner):
    bare = await in_thread(lambda: estimate(owner, ask("hi", model=LLAMA)).high)()
    await in_thread(set_budget)(user=owner, amount=bare + Decimal("0.001"))
    with pytest.raises(BudgetExceeded):
        await metered.complete(owner, ask("hi", model=LLAMA, params=SEARCH), source="chat")
    assert upstream_calls(simulator) == 0
    assert await in_thread(LedgerEntry.objects.count)() == 0


async def test_web_search_turned_off_is_refused_before_any_call(simulator, catalog, owner, settings):
    settings.ORWEB_ALLOW_WEB_SEARCH = False
    for params in (SEARCH, {"plugins": [{"id": "web"}]}):
        with pytest.raises(ModelNotAllowed):
            await metered.complete(owner, ask("hi", params=params), source="chat")
    assert upstream_calls(simulator) == 0


async def test_cache_writes_and_reads_are_recorded_per_row(simulator, catalog, owner):
    system = {
        "role": "system",
        "content": [{"type": "text", "text": "word " * 1500, "cache_control": {"type": "ephemeral"}}],
    }
    request = ChatRequest(
        model="anthropic/claude-3.5-haiku", messages=[system, {"role": "user", "content": "hi"}], max_tokens=50
    )
    await metered.complete(owner, request, source="chat")
    async with metered.stream(owner, request, source="chat") as call:
        [event async for event in call]
    written, read = await in_thread(_entries)()
    assert written.cache_write_tokens > 1024 and written.cached_tokens == 0
    assert read.cached_tokens == written.cache_write_tokens and read.cache_write_tokens == 0
    assert read.cost < written.cost
    await in_thread(assert_ledger_matches_simulator)(simulator)


async def test_reasoning_tokens_are_recorded_and_details_kept_for_the_next_turn(simulator, catalog, owner):
    request = ask("why?", model="anthropic/claude-sonnet-4", params={"reasoning": {"effort": "low"}}, max_tokens=500)
    completion = await metered.complete(owner, request, source="chat")
    [entry] = await in_thread(_entries)()
    assert entry.reasoning_tokens > 0 and completion.usage.reasoning_tokens == entry.reasoning_tokens
    assert completion.reasoning_details[0]["signature"]
    turn = {"role": "assistant", "content": completion.content, "reasoning_details": completion.reasoning_details}
    follow = ChatRequest(
        model=request.model,
        messages=[*request.messages, turn, {"role": "user", "content": "and?"}],
        params=request.params,
    )
    await metered.complete(owner, follow, source="chat")
    assert upstream_bodies(simulator)[-1]["messages"][1]["reasoning_details"] == completion.reasoning_details
    await in_thread(assert_ledger_matches_simulator)(simulator)


@pytest.mark.parametrize(
    ("model", "provider", "served"),
    [
        ("meta-llama/llama-3.3-70b-instruct", {"sort": "throughput"}, "Together"),
        ("meta-llama/llama-3.3-70b-instruct:nitro", None, "Together"),
        ("meta-llama/llama-3.3-70b-instruct", {"order": ["Groq"]}, "Together"),
    ],
)
async def test_routing_preferences_go_out_capped_at_the_held_price(simulator, catalog, owner, model, provider, served):
    params = {"provider": provider} if provider else {}
    completion = await metered.complete(owner, ask("hi", model=model, params=params), source="chat")
    [body] = upstream_bodies(simulator)
    assert body["model"] == model
    assert body["provider"]["max_price"] == {"prompt": 0.13, "completion": 0.39, "request": 0, "image": 0}
    assert completion.result.provider == served
    await in_thread(assert_ledger_matches_simulator)(simulator)


async def test_a_callers_lower_max_price_is_kept(simulator, catalog, owner):
    provider = {"sort": "throughput", "max_price": {"completion": 0.2}}
    with pytest.raises(UpstreamFailed):
        await metered.complete(
            owner, ask("hi", model="meta-llama/llama-3.3-70b-instruct", params={"provider": provider}), source="chat"
        )
    assert upstream_bodies(simulator)[0]["provider"]["max_price"] == {
        "prompt": 0.13,
        "completion": 0.2,
        "request": 0,
        "image": 0,
    }
    [entry] = await in_thread(_entries)()
    assert entry.status == "error" and entry.cost == 0
    await in_thread(assert_ledger_matches_simulator)(simulator)


def test_reasoning_raises_the_likely_cost_and_a_cache_mark_the_worst_case(catalog, owner):
    plain = ask("why?" * 300, model="anthropic/claude-sonnet-4", max_tokens=8000)
    thinking = ask(
        "why?" * 300, model="anthropic/claude-sonnet-4", max_tokens=8000, params={"reasoning": {"effort": "high"}}
    )
    assert estimate(owner, thinking).low > estimate(owner, plain).low
    assert estimate(owner, thinking).high == estimate(owner, plain).high
    assert estimate(owner, plain).remaining is None
    marked = ask(
        "why?" * 300,
        model="anthropic/claude-sonnet-4",
        max_tokens=8000,
        params={"cache_control": {"type": "ephemeral"}},
    )
    assert estimate(owner, marked).high > estimate(owner, plain).high
    assert estimate(owner, marked).fees > 0 == estimate(owner, plain).fees

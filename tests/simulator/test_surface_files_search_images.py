"""Files through the `file-parser` plugin (engines, the OCR fee per page, native input, parsed files sent back),
the web search server tool (fee, results, citations, server_tool_use_details), image output, and what each
still bills when the generation fails."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from openrouter.fees import OCR_PAGE, exa_search_fee
from tests.helpers.pdfs import pdf_part, text_part
from tests.helpers.simulator import Stream, chat

MINI = "openai/gpt-4.1-mini"  # native files, native web search at $0.01
LLAMA = "meta-llama/llama-3.1-8b-instruct"  # no file input, no native search
LLAMA_PRICES = (Decimal("0.00000002"), Decimal("0.00000003"))


async def _post(sim_client, body: dict, status: int = 200) -> dict:
    response = await sim_client.post("/chat/completions", json=body)
    assert response.status_code == status, response.text
    return json.loads(response.text, parse_float=Decimal)


def _tokens_cost(usage: dict, prices: tuple[Decimal, Decimal]) -> Decimal:
    return usage["prompt_tokens"] * prices[0] + usage["completion_tokens"] * prices[1]


def _ask(parts: list[dict], model: str = LLAMA, **extra) -> dict:
    return chat([{"type": "text", "text": "Summarise"}, *parts], model=model, **extra)


@pytest.mark.parametrize(
    ("engine", "fee"), [("pdf-text", Decimal(0)), ("mistral-ocr", 3 * OCR_PAGE), (None, 3 * OCR_PAGE)]
)
async def test_pdf_engines_bill_ocr_per_page_and_the_default_on_a_model_without_files_is_ocr(sim_client, engine, fee):
    plugins = [{"id": "file-parser", **({"pdf": {"engine": engine}} if engine else {})}]
    reply = await _post(sim_client, _ask([pdf_part(3)], plugins=plugins))
    usage = reply["usage"]
    assert usage["cost"] == _tokens_cost(usage, LLAMA_PRICES) + fee
    [parsed] = reply["choices"][0]["message"]["annotations"]
    assert parsed["type"] == "file" and parsed["file"]["name"] == "report.pdf"
    assert "Quarterly numbers 3" in parsed["file"]["content"][0]["text"]


async def test_native_input_is_billed_as_tokens_and_refused_on_a_model_without_it(sim_client):
    native = await _post(
        sim_client, _ask([pdf_part(2)], model=MINI, plugins=[{"id": "file-parser", "pdf": {"engine": "native"}}])
    )
    text = await _post(
        sim_client, _ask([pdf_part(2)], model=MINI, plugins=[{"id": "file-parser", "pdf": {"engine": "pdf-text"}}])
    )
    assert native["usage"]["prompt_tokens"] > text["usage"]["prompt_tokens"] + 1000
    refused = await _post(
        sim_client, _ask([pdf_part(1)], plugins=[{"id": "file-parser", "pdf": {"engine": "native"}}]), 404
    )
    assert "native file input" in refused["error"]["message"]


async def test_a_parsed_file_sent_back_is_not_billed_for_ocr_again(sim_client):
    ocr = [{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}]
    first = await _post(sim_client, _ask([pdf_part(2)], plugins=ocr))
    message = first["choices"][0]["message"]
    turn = {"role": "assistant", "content": message["content"], "annotations": message["annotations"]}
    again = {**_ask([pdf_part(2)], plugins=ocr)}
    again["messages"] = [again["messages"][0], turn, {"role": "user", "content": "More detail"}]
    usage = (await _post(sim_client, again))["usage"]
    assert usage["cost"] == _tokens_cost(usage, LLAMA_PRICES)


async def test_text_files_are_read_as_text_and_other_files_are_refused(sim_client):
    reply = await _post(sim_client, _ask([text_part("a,b\n1,2\n" * 40, "t.csv", "text/csv")]))
    assert reply["usage"]["prompt_tokens"] > 80
    await _post(sim_client, _ask([text_part("\x00\x01", "x.bin", "application/octet-stream")]), 400)
    bad = {"type": "file", "file": {"filename": "x.pdf", "file_data": "not a url"}}
    await _post(sim_client, _ask([bad]), 400)


async def test_web_search_bills_exa_or_native_and_cites_its_results(sim_client):
    exa = await _post(
        sim_client, chat("news?", model=LLAMA, tools=[{"type": "openrouter:web_search", "max_results": 12}])
    )
    usage = exa["usage"]
    assert usage["server_tool_use_details"] == {"web_search_requests": 1}
    assert (
        usage["cost"]
        == _tokens_cost(usage, LLAMA_PRICES) + exa_search_fee(12)
        == _tokens_cost(usage, LLAMA_PRICES) + Decimal("0.009")
    )
    citations = exa["choices"][0]["message"]["annotations"]
    assert len(citations) == 12 and all(
        c["type"] == "url_citation" and c["url_citation"]["url"].startswith("https://") for c in citations
    )
    native = await _post(sim_client, chat("news?", model=MINI, tools=[{"type": "openrouter:web_search"}]))
    prices = (Decimal("0.0000004"), Decimal("0.0000016"))
    assert native["usage"]["cost"] == _tokens_cost(native["usage"], prices) + Decimal("0.01")
    assert len(native["choices"][0]["message"]["annotations"]) == 5
    forced_exa = await _post(
        sim_client, chat("news?", model=MINI, tools=[{"type": "openrouter:web_search", "engine": "exa"}])
    )
    assert forced_exa["usage"]["cost"] == _tokens_cost(forced_exa["usage"], prices) + Decimal("0.007")


async def test_a_search_streams_its_citations_and_a_bad_max_results_is_refused(sim_client):
    response = await sim_client.post(
        "/chat/completions", json=chat("news?", model=LLAMA, plugins=[{"id": "web"}], stream=True)
    )
    streamed = Stream.parse(response.text)
    [annotated] = [c for c in streamed.chunks if c.get("choices") and c["choices"][0]["delta"].get("annotations")]
    assert len(annotated["choices"][0]["delta"]["annotations"]) == 5
    assert streamed.usage["server_tool_use_details"] == {"web_search_requests": 1}
    await _post(sim_client, chat("news?", tools=[{"type": "openrouter:web_search", "max_results": 0}]), 400)


async def test_search_and_ocr_fees_are_billed_even_when_the_generation_fails(sim_client, sim):
    body = _ask([pdf_part(2)], tools=[{"type": "openrouter:web_search"}])
    body["messages"][0]["content"][0]["text"] += " [[sim error_after=0]]"
    failed = await _post(sim_client, body)
    assert "error" in failed
    [generation] = sim.generations.values()
    assert generation.tokens_completion == 0
    assert generation.cost == exa_search_fee(5) + 2 * OCR_PAGE  # the failed generation itself is free


async def test_image_output_is_a_png_billed_per_image(sim_client):
    model = "google/gemini-2.5-flash-image"
    reply = await _post(sim_client, chat("a cat", model=model, modalities=["image", "text"]))
    [image] = reply["choices"][0]["message"]["images"]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    usage = reply["usage"]
    assert usage["cost"] == _tokens_cost(usage, (Decimal("0.0000003"), Decimal("0.0000025"))) + Decimal("0.039")
    response = await sim_client.post(
        "/chat/completions", json=chat("a cat", model=model, modalities=["image", "text"], stream=True)
    )
    images = [
        c["choices"][0]["delta"]["images"]
        for c in Stream.parse(response.text).chunks
        if c.get("choices") and c["choices"][0]["delta"].get("images")
    ]
    assert len(images) == 1
    refused = await _post(sim_client, chat("a cat", model=LLAMA, modalities=["image", "text"]), 404)
    assert "output modalities" in refused["error"]["message"]

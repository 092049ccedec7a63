"""The wider surface on /v1 through the official openai SDK, against the live app and the simulator:
reasoning with its details, citations, generated images, PDFs through the file parser, provider routing,
embeddings and the Responses API (streamed and not), each relayed as OpenRouter sent it and charged in the
ledger exactly what the simulator billed; refusals (a budget that can't cover the fee, search turned off)
before any call."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import httpx
import openai
import pytest

from billing.budgets import set_budget
from billing.models import Hold, LedgerEntry
from openrouter.fees import OCR_PAGE, exa_search_fee
from tests.api.conftest import key_of, sdk
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import upstream_bodies, upstream_calls
from tests.helpers.pdfs import pdf_part

pytestmark = pytest.mark.django_db(transaction=True)

SONNET = "anthropic/claude-sonnet-4"
LLAMA = "meta-llama/llama-3.1-8b-instruct"


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _cost(usage) -> Decimal:
    return Decimal(str(usage.model_extra["cost"]))


def test_reasoning_and_its_details_are_relayed_and_can_be_sent_back(api, simulator):
    reply = api.chat.completions.create(
        model=SONNET, messages=ask("why?"), max_tokens=400, extra_body={"reasoning": {"effort": "low"}}
    )
    message = reply.choices[0].message
    [detail] = message.model_extra["reasoning_details"]
    assert detail["text"] == message.model_extra["reasoning"] and detail["signature"]
    assert reply.usage.completion_tokens_details.reasoning_tokens > 0
    turn = {"role": "assistant", "content": message.content, "reasoning_details": [detail]}
    again = api.chat.completions.create(
        model=SONNET,
        messages=[*ask("why?"), turn, *ask("and?")],
        max_tokens=400,
        extra_body={"reasoning": {"effort": "low"}},
    )
    assert again.choices[0].message.content
    assert upstream_bodies(simulator)[-1]["messages"][1]["reasoning_details"] == [detail]
    entries = list(LedgerEntry.objects.order_by("pk"))
    assert [e.reasoning_tokens for e in entries] == [
        reply.usage.completion_tokens_details.reasoning_tokens,
        again.usage.completion_tokens_details.reasoning_tokens,
    ]
    assert_ledger_matches_simulator(simulator)


def test_a_stream_relays_reasoning_details_citations_and_the_usage_details(api, simulator):
    stream = api.chat.completions.create(
        model=SONNET,
        messages=ask("news?"),
        max_tokens=400,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"reasoning": {"effort": "low"}, "tools": [{"type": "openrouter:web_search", "max_results": 3}]},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.model_extra for c in chunks if c.choices]
    details = [d for delta in deltas for d in delta.get("reasoning_details") or ()]
    assert "".join(d.get("text", "") for d in details) == "".join(delta.get("reasoning") or "" for delta in deltas)
    assert details[-1]["signature"]
    [citations] = [delta["annotations"] for delta in deltas if delta.get("annotations")]
    assert [c["type"] for c in citations] == ["url_citation"] * 3
    usage = chunks[-1].usage
    assert usage.model_extra["server_tool_use_details"] == {"web_search_requests": 1}
    entry = LedgerEntry.objects.get()
    assert entry.cost == _cost(usage) and entry.cost_details["server_tool_use_details"] == {"web_search_requests": 1}
    assert_ledger_matches_simulator(simulator)


def test_a_pdf_through_the_ocr_parser_is_held_with_its_fee_and_charged_what_was_billed(api, simulator, owner):
    set_budget(user=owner, amount=Decimal("1"))
    content = [{"type": "text", "text": "Summarise"}, pdf_part(3)]
    reply = api.chat.completions.create(
        model=LLAMA,
        messages=[{"role": "user", "content": content}],
        max_tokens=100,
        extra_body={"plugins": [{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}]},
    )
    [parsed] = reply.choices[0].message.to_dict()["annotations"]
    assert parsed["type"] == "file" and parsed["file"]["name"] == "report.pdf"
    usage = reply.usage
    tokens = usage.prompt_tokens * Decimal("0.00000002") + usage.completion_tokens * Decimal("0.00000003")
    assert _cost(usage) == tokens + 3 * OCR_PAGE
    assert Hold.objects.get().amount > 3 * OCR_PAGE
    assert_ledger_matches_simulator(simulator)


def test_a_file_that_is_neither_pdf_nor_text_or_a_link_is_a_400(api, simulator):
    for file_data in (
        "data:application/pdf;base64," + base64.b64encode(b"\x89PNG\x00\xff").decode(),
        "https://example.org/a.pdf",
    ):
        part = {"type": "file", "file": {"filename": "a.pdf", "file_data": file_data}}
        with pytest.raises(openai.BadRequestError) as raised:
            api.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": [part]}], max_tokens=10)
        assert raised.value.body["param"] == "messages[0].content[0].file.file_data"
    assert upstream_calls(simulator) == 0


def test_an_image_reply_is_relayed_as_sent(api, simulator):
    model = "google/gemini-2.5-flash-image"
    reply = api.chat.completions.create(
        model=model, messages=ask("a cat"), max_tokens=100, extra_body={"modalities": ["image", "text"]}
    )
    [image] = reply.choices[0].message.model_extra["images"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    stream = api.chat.completions.create(
        model=model, messages=ask("a cat"), max_tokens=100, stream=True, extra_body={"modalities": ["image", "text"]}
    )
    streamed = [d for c in stream if c.choices for d in c.choices[0].delta.model_extra.get("images") or ()]
    assert streamed == [image]
    assert_ledger_matches_simulator(simulator)


def test_routing_preferences_are_sent_capped_at_the_catalog_price(api, simulator):
    reply = api.chat.completions.create(
        model="meta-llama/llama-3.3-70b-instruct:nitro",
        messages=ask("hi"),
        max_tokens=20,
        extra_body={"provider": {"order": ["Groq"]}},
    )
    assert reply.model_extra["provider"] == "Together"
    sent = upstream_bodies(simulator)[0]["provider"]
    assert sent == {"order": ["Groq"], "max_price": {"prompt": 0.13, "completion": 0.39, "request": 0, "image": 0}}
    assert_ledger_matches_simulator(simulator)


def test_a_budget_that_cannot_cover_the_search_fee_is_refused_before_any_call(api, simulator, owner):
    set_budget(user=owner, amount=exa_search_fee(20) - Decimal("0.001"))
    with pytest.raises(openai.APIStatusError) as raised:
        api.chat.completions.create(
            model=LLAMA,
            messages=ask("hi"),
            max_tokens=5,
            extra_body={"tools": [{"type": "openrouter:web_search", "max_results": 20}]},
        )
    assert raised.value.status_code == 402
    assert upstream_calls(simulator) == 0 and not LedgerEntry.objects.exists()


def test_search_turned_off_is_refused_before_any_call(api, simulator, settings):
    settings.ORWEB_ALLOW_WEB_SEARCH = False
    with pytest.raises(openai.PermissionDeniedError):
        api.chat.completions.create(
            model=LLAMA, messages=ask("hi"), max_tokens=5, extra_body={"plugins": [{"id": "web"}]}
        )
    assert upstream_calls(simulator) == 0


def test_embeddings_through_the_sdk_are_metered(api, simulator, owner_key):
    result = api.embeddings.create(model="openai/text-embedding-3-small", input=["alpha", "beta gamma"], dimensions=8)
    assert [len(item.embedding) for item in result.data] == [8, 8]
    entry = LedgerEntry.objects.get()
    assert entry.source == "api" and entry.api_key_id == owner_key.key.pk
    assert entry.prompt_tokens == result.usage.prompt_tokens and entry.completion_tokens == 0
    assert entry.cost == _cost(result.usage) > 0
    packed = api.embeddings.create(model="openai/text-embedding-3-small", input="alpha", dimensions=8)
    assert packed.data[0].embedding == result.data[0].embedding  # the SDK asks for base64 and decodes it
    assert_ledger_matches_simulator(simulator)


def test_embedding_models_are_listed_and_kept_apart_from_chat(api, simulator):
    listed = {model.id for model in api.models.list()}
    assert "openai/text-embedding-3-small" in listed
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model="openai/text-embedding-3-small", messages=ask("hi"), max_tokens=5)
    with pytest.raises(openai.BadRequestError):
        api.embeddings.create(model="openai/gpt-4o-mini", input="hi")
    with pytest.raises(openai.BadRequestError, match="chooses chat models"):
        api.embeddings.create(model="orweb/auto", input="hi")
    assert upstream_calls(simulator) == 0


def test_a_response_through_the_sdk_is_metered(api, simulator):
    response = api.responses.create(model="openai/gpt-4o-mini", input="echo: hello there", instructions="Be brief.")
    assert response.output_text == "hello there"
    entry = LedgerEntry.objects.get()
    assert entry.generation_id == response.id and entry.cost == Decimal(str(response.usage.model_extra["cost"])) > 0
    sent = upstream_bodies(simulator)[0]
    assert (
        sent["instructions"] == "Be brief."
        and sent["max_output_tokens"] > 0
        and sent["input"][0]["content"] == "echo: hello there"
    )
    assert_ledger_matches_simulator(simulator)


def test_a_streamed_response_through_the_sdk_is_metered(api, simulator):
    events = list(
        api.responses.create(
            model=SONNET, input="why?", reasoning={"effort": "low"}, max_output_tokens=400, stream=True
        )
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    completed = events[-1].response
    assert completed.output_text == text
    entry = LedgerEntry.objects.get()
    assert entry.reasoning_tokens > 0 and entry.cost == Decimal(str(completed.usage.model_extra["cost"]))
    assert_ledger_matches_simulator(simulator)


def test_stateful_responses_are_refused_before_any_call(api, simulator):
    with pytest.raises(openai.BadRequestError):
        api.responses.create(model="openai/gpt-4o-mini", input="hi", store=True)
    with pytest.raises(openai.BadRequestError):
        api.responses.create(model="openai/gpt-4o-mini", input="hi", previous_response_id="resp_1")
    assert upstream_calls(simulator) == 0


def test_float_embeddings_are_relayed_as_json_numbers(live_app, catalog, owner_key, simulator):
    response = httpx.post(
        live_app.url + "/v1/embeddings",
        json={"model": "openai/text-embedding-3-small", "input": "alpha", "dimensions": 4, "encoding_format": "float"},
        headers={"Authorization": f"Bearer {owner_key.secret}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    [item] = response.json()["data"]
    assert len(item["embedding"]) == 4 and all(isinstance(x, float) for x in item["embedding"])
    assert isinstance(response.json()["usage"]["cost"], float)
    assert_ledger_matches_simulator(simulator)


@pytest.mark.parametrize("stream", [False, True])
def test_a_response_relays_function_calls(api, simulator, stream):
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    created = api.responses.create(
        model="openai/gpt-4o-mini", input='call:get_weather({"city": "Oslo"})', tools=tools, stream=stream
    )
    response = list(created)[-1].response if stream else created
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Oslo"} and call.call_id
    assert upstream_bodies(simulator)[0]["tools"] == tools
    assert_ledger_matches_simulator(simulator)


def test_embeddings_and_responses_are_refused_like_chat_before_any_call(live_app, catalog, owner, simulator):
    anonymous = sdk(live_app, "sk-orweb-not-a-key")
    with pytest.raises(openai.AuthenticationError):
        anonymous.embeddings.create(model="openai/text-embedding-3-small", input="hi")
    with pytest.raises(openai.AuthenticationError):
        anonymous.responses.create(model="openai/gpt-4o-mini", input="hi")
    set_budget(user=owner, amount=Decimal("0"))
    api = sdk(live_app, key_of(owner).secret)
    for call in (
        lambda: api.embeddings.create(model="openai/text-embedding-3-small", input="hi"),
        lambda: api.responses.create(model="openai/gpt-4o-mini", input="hi"),
        lambda: api.responses.create(model="openai/gpt-4o-mini", input="hi", stream=True),
    ):
        with pytest.raises(openai.APIStatusError) as raised:
            call()
        assert raised.value.status_code == 402
    assert upstream_calls(simulator) == 0 and not LedgerEntry.objects.exists()

"""Chat over a real websocket with the parts of OpenRouter beyond plain text: reasoning shown live and
kept, its details sent back next turn; web search citations; PDFs and text files read through the file
parser; images a model makes stored as the reply's attachments; what the cache saved. Each ends with the
ledger matching what the simulator billed, by generation id."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat import conversations, runner
from chat.models import Attachment, Message
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.chat import Socket, row, sent_chats

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drained")]

REASONER = "deepseek/deepseek-r1"
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
    b"3 0 obj << /Type /Page /Parent 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)


async def ledger_matches(simulator) -> None:
    """Once every reply and its title call have settled: the ledger is what the simulator billed."""
    await runner.drain()
    await database_sync_to_async(assert_ledger_matches_simulator)(simulator)


def last_request(simulator) -> dict:
    return sent_chats(simulator)[-1]


async def new_conversation(owner, model: str, **settings):
    return await database_sync_to_async(conversations.create_conversation)(owner, model=model, **settings)


async def test_reasoning_streams_live_is_kept_and_counted(owner, catalog, simulator):
    conversation = await new_conversation(owner, REASONER, reasoning="high")
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: the answer"})
    done, seen = await socket.until("done", timeout=30)
    assert last_request(simulator)["reasoning"] == {"effort": "high"}
    live = "".join(f["text"] for f in seen if f["type"] == "reasoning")
    assert live, "reasoning reached the tab while streaming"
    message = await row(done["message_id"])
    assert message.reasoning == live
    assert message.reasoning_tokens > 0
    assert message.reasoning_details and message.reasoning_details[0]["step"] == 0
    assert "data-thinking-text>" in done["html"] and "<summary>Thinking" in done["html"]
    assert f"{message.reasoning_tokens} reasoning" in done["html"]
    assert "the answer" in message.content and message.reasoning not in message.content
    await socket.close()
    await ledger_matches(simulator)


async def test_reasoning_details_go_back_unmodified_on_the_next_turn(owner, catalog, simulator):
    conversation = await new_conversation(owner, REASONER, reasoning="low")
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: first"})
    first, _ = await socket.until("done", timeout=30)
    details = (await row(first["message_id"])).reasoning_details[0]["details"]
    await socket.send({"action": "send", "content": "echo: second"})
    await socket.until("done", timeout=30)
    sent = last_request(simulator)["messages"]
    [earlier] = [m for m in sent if m["role"] == "assistant"]
    assert earlier["reasoning_details"] == details
    await socket.close()
    await ledger_matches(simulator)


async def test_reasoning_off_is_asked_for_and_no_thinking_is_shown(owner, catalog, simulator):
    conversation = await new_conversation(owner, REASONER, reasoning="off")
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: plain"})
    done, seen = await socket.until("done", timeout=30)
    assert last_request(simulator)["reasoning"] == {"enabled": False}
    assert not [f for f in seen if f["type"] == "reasoning"]
    assert (await row(done["message_id"])).reasoning == ""
    await socket.close()


async def test_a_model_without_reasoning_is_not_sent_the_setting(owner, catalog, simulator):
    conversation = await new_conversation(owner, "openai/gpt-4o-mini", reasoning="high")
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: hi"})
    await socket.until("done", timeout=30)
    assert "reasoning" not in last_request(simulator)
    await socket.close()


async def test_web_search_cites_its_sources_as_safe_links(owner, catalog, simulator):
    conversation = await new_conversation(owner, "openai/gpt-4.1-mini", web_search=True)
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "What happened in Lisbon today?"})
    done, _ = await socket.until("done", timeout=30)
    assert {"type": "openrouter:web_search", "max_results": 5} in last_request(simulator)["tools"]
    message = await row(done["message_id"])
    cited = [a for a in message.annotations if a.get("type") == "url_citation"]
    assert cited
    url = cited[0]["url_citation"]["url"]
    assert f'<a href="{url}" rel="noopener nofollow" target="_blank">' in done["html"]
    assert done["status"] == "complete"
    await socket.close()
    await ledger_matches(simulator)


async def test_a_pdf_goes_as_a_file_part_with_the_parser_plugin(owner, catalog, simulator):
    conversation = await new_conversation(owner, "openai/gpt-3.5-turbo")  # no native file input
    pdf = await database_sync_to_async(Attachment.objects.create)(
        user=owner, name="report.pdf", mime="application/pdf", size=len(PDF), sha256="x", data=PDF
    )
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "Summarise it", "attachments": [pdf.pk]})
    done, seen = await socket.until("done", timeout=30)
    assert done["status"] == "complete"
    body = last_request(simulator)
    parts = body["messages"][-1]["content"]
    assert parts[1]["type"] == "file" and parts[1]["file"]["filename"] == "report.pdf"
    assert parts[1]["file"]["file_data"].startswith("data:application/pdf;base64,")
    assert body["plugins"] == [{"id": "file-parser", "pdf": {"engine": "pdf-text"}}]
    [user_frame] = [f for f in seen if f["type"] == "message" and f["message"]["role"] == "user"]
    assert "report.pdf" in user_frame["message"]["html"] and "<img" not in user_frame["message"]["html"]
    await socket.close()
    await ledger_matches(simulator)


async def test_ocr_is_asked_for_when_the_conversation_says_so(owner, catalog, simulator):
    conversation = await new_conversation(owner, "openai/gpt-4o-mini", pdf_engine="mistral-ocr")
    pdf = await database_sync_to_async(Attachment.objects.create)(
        user=owner, name="scan.pdf", mime="application/pdf", size=len(PDF), sha256="x", data=PDF
    )
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "Read the scan", "attachments": [pdf.pk]})
    done, _ = await socket.until("done", timeout=30)
    assert last_request(simulator)["plugins"] == [{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}]
    message = await row(done["message_id"])
    assert message.cost > 0
    await socket.close()
    await ledger_matches(simulator)


async def test_the_parsed_file_goes_back_next_turn_so_ocr_is_paid_once(owner, catalog, simulator):
    conversation = await new_conversation(owner, "openai/gpt-4o-mini", pdf_engine="mistral-ocr")
    pdf = await database_sync_to_async(Attachment.objects.create)(
        user=owner, name="scan.pdf", mime="application/pdf", size=len(PDF), sha256="x", data=PDF
    )
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "Read the scan", "attachments": [pdf.pk]})
    first, _ = await socket.until("done", timeout=30)
    parsed = [a for a in (await row(first["message_id"])).annotations if a.get("type") == "file"]
    assert parsed, "OpenRouter's parser answered with the parsed file"
    await socket.send({"action": "send", "content": "And the date on it?"})
    await socket.until("done", timeout=30)
    [follow_up] = [body for body in sent_chats(simulator) if "And the date on it?" in str(body["messages"][-1])]
    [earlier] = [m for m in follow_up["messages"] if m["role"] == "assistant"]
    assert earlier["annotations"] == parsed
    await socket.close()
    await ledger_matches(simulator)
    fees = simulator.control("GET", "billed").json()
    assert fees  # what each generation cost, compared above with the ledger by generation id


async def test_an_image_reply_is_stored_and_served_by_our_own_view(owner, catalog, simulator):
    conversation = await new_conversation(owner, "google/gemini-2.5-flash-image")
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "Draw a chequerboard"})
    done, _ = await socket.until("done", timeout=30)
    assert last_request(simulator)["modalities"] == ["image", "text"]
    message = await row(done["message_id"])
    [image] = await database_sync_to_async(lambda: list(message.attachments.all()))()
    assert image.mime == "image/png" and bytes(image.data).startswith(b"\x89PNG")
    assert f'src="/chat/attachments/{image.pk}"' in done["html"]
    assert "data:image" not in done["html"]
    client = await database_sync_to_async(Client)()
    await database_sync_to_async(client.force_login)(owner)
    response = await database_sync_to_async(client.get)(f"/chat/attachments/{image.pk}")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response["Content-Disposition"].startswith("inline")
    await socket.close()
    await ledger_matches(simulator)


async def test_a_long_system_prompt_is_marked_cacheable_and_the_saving_shown(owner, catalog, simulator):
    system = "You answer questions about our handbook. " * 300
    conversation = await new_conversation(owner, "anthropic/claude-3.5-haiku", system_prompt=system)
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: one"})
    await socket.until("done", timeout=30)
    first = last_request(simulator)["messages"][0]
    assert first["content"] == [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    await socket.send({"action": "send", "content": "echo: two"})
    done, _ = await socket.until("done", timeout=30)
    message = await row(done["message_id"])
    assert message.cached_tokens > 0
    assert message.cache_saved > 0
    assert "cached" in done["html"] and "cache saved" in done["html"]
    await socket.close()
    await ledger_matches(simulator)


async def test_the_thinking_is_kept_after_a_reload_and_left_out_of_exports_unless_asked(owner, catalog, simulator):
    conversation = await new_conversation(owner, REASONER, reasoning="medium")
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: shown"})
    done, _ = await socket.until("done", timeout=30)
    await socket.close()
    reasoning = (await row(done["message_id"])).reasoning
    client = await database_sync_to_async(Client)()
    await database_sync_to_async(client.force_login)(owner)
    page = (await database_sync_to_async(client.get)(f"/chat/{conversation.pk}/")).content.decode()
    assert "<summary>Thinking" in page
    plain = (await database_sync_to_async(client.get)(f"/chat/{conversation.pk}/export.md")).content.decode()
    assert "Thinking" not in plain and "shown" in plain
    full = (await database_sync_to_async(client.get)(f"/chat/{conversation.pk}/export.md?reasoning=1")).content.decode()
    assert "### Thinking" in full and reasoning.strip()[:40] in full


async def test_model_text_in_the_thinking_is_escaped(owner, catalog):
    conversation = await new_conversation(owner, REASONER)
    reply = await database_sync_to_async(Message.objects.create)(
        conversation=conversation, role="assistant", reasoning="<img src=x onerror=alert(1)>", content="ok"
    )
    from chat.frames import message_frame

    frame = await database_sync_to_async(message_frame)(reply)
    assert "<img src=x" not in frame["message"]["html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in frame["message"]["html"]


async def test_web_search_turned_off_by_policy_is_a_notice_saying_why(owner, catalog, simulator, settings):
    settings.ORWEB_ALLOW_WEB_SEARCH = False
    conversation = await new_conversation(owner, "openai/gpt-4.1-mini", web_search=True)
    before = simulator.stats()["requests_total"]
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "Search for news"})
    notice, _ = await socket.until("notice", timeout=30)
    assert "Web search is turned off" in notice["message"] and notice["restore"] is True
    assert simulator.stats()["requests_total"] == before
    await socket.close()


async def test_an_auto_reply_says_why_auto_chose_its_model(owner, catalog, simulator):
    conversation = await new_conversation(owner, "orweb/auto:cost")
    socket = await Socket(owner, conversation.pk).open()
    await socket.send({"action": "send", "content": "echo: pick one"})
    done, _ = await socket.until("done", timeout=30)
    message = await row(done["message_id"])
    assert message.auto_reason.startswith(f"orweb/auto:cost chose {message.served_model}: the cheapest")
    assert "data-auto-reason" in done["html"]
    await socket.close()
    await ledger_matches(simulator)

"""The chat surface in a real browser: reasoning shown live in a Thinking block, a PDF answer with its web
sources, an image reply, the price before Send in the composer, a conversation opening at its latest
message, and a model's page. Each leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chat.conversations import create_conversation
from chat.models import Attachment, Message
from tests.browser.conftest import Tab
from tests.helpers.billing import assert_ledger_matches_simulator

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
    b"3 0 obj << /Type /Page /Parent 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)


def open_chat(tab: Tab, user, model: str, **settings):
    conversation = create_conversation(user, model=model, **settings)
    tab.goto(f"/chat/{conversation.pk}/")
    expect(tab.page.locator("[data-conn]")).to_have_text("live")
    return conversation


def send(tab: Tab, text: str) -> None:
    prompt = tab.page.locator("#prompt")
    prompt.fill(text)
    prompt.press("Enter")


def wait_done(tab: Tab):
    reply = tab.page.locator("article.msg-assistant").last
    expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
    return reply


def test_reasoning_shows_live_folds_away_and_stays_after_reload(tab, owner, simulator):
    open_chat(tab, owner, "deepseek/deepseek-r1", reasoning="high")
    send(tab, "echo: Forty-two. [[sim tps=30]]")
    thinking = tab.page.locator("article.msg-assistant [data-thinking]").last
    expect(thinking).to_be_visible()
    expect(thinking.locator("[data-thinking-text]")).not_to_be_empty()
    tab.screenshot("chat-reasoning-live")
    reply = wait_done(tab)
    expect(reply.locator("[data-thinking]")).not_to_have_attribute("open", "")
    expect(reply.locator("[data-reasoning-tokens]")).to_contain_text("reasoning")
    reply.locator("[data-thinking] summary").click()
    expect(reply.locator("[data-thinking-text]")).to_be_visible()
    tab.screenshot("chat-reasoning")
    tab.page.reload()
    expect(tab.page.locator("article.msg-assistant [data-thinking-text]").last).not_to_be_empty()
    assert tab.console_errors == []
    assert_ledger_matches_simulator(simulator)


def test_a_pdf_answer_with_web_sources(tab, owner, simulator):
    conversation = open_chat(tab, owner, "openai/gpt-4.1-mini", web_search=True)
    tab.page.locator("[data-attach]").set_input_files(
        {"name": "handbook.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    expect(tab.page.locator("[data-files] .file-chip")).to_contain_text("handbook.pdf")
    send(tab, "What does the handbook say, and what is new on the web?")
    reply = wait_done(tab)
    sources = reply.locator("nav.citations a")
    expect(sources.first).to_be_visible()
    assert sources.first.get_attribute("rel") == "noopener nofollow"
    assert re.match(r"https?://", sources.first.get_attribute("href"))
    expect(tab.page.locator("article.msg-user .file-chip")).to_contain_text("handbook.pdf")
    tab.screenshot("chat-pdf-citations")
    stored = Attachment.objects.get(conversation=conversation)
    assert stored.mime == "application/pdf"
    assert tab.console_errors == []
    assert_ledger_matches_simulator(simulator)


def test_an_image_reply_is_shown_from_our_own_url(tab, owner, simulator):
    open_chat(tab, owner, "google/gemini-2.5-flash-image")
    send(tab, "Draw a chequerboard")
    reply = wait_done(tab)
    image = reply.locator("img[data-reply-image]")
    expect(image).to_be_visible()
    assert re.fullmatch(r"/chat/attachments/\d+", image.get_attribute("src"))
    # Decoded from our URL (visible comes first: the box shows while the bytes are still on their way).
    tab.page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    tab.screenshot("chat-image-reply")
    assert tab.console_errors == []
    assert_ledger_matches_simulator(simulator)


def test_the_composer_shows_the_price_before_send(tab, owner, simulator):
    from decimal import Decimal

    from billing.budgets import set_budget

    set_budget(user=owner, amount=Decimal(5), period="month")
    open_chat(tab, owner, "anthropic/claude-sonnet-4")
    requests_before = simulator.stats()["requests_total"]
    tab.page.locator("#prompt").fill("Explain the Lisbon earthquake of 1755 in detail.")
    estimate = tab.page.locator("[data-estimate]")
    expect(estimate).to_have_text(re.compile(r"≈ \$[\d.]+(–\$[\d.]+)? · leaves \$[\d.]+ of your budget"))
    tab.screenshot("chat-estimate")
    assert simulator.stats()["requests_total"] == requests_before  # estimating calls nobody upstream
    send(tab, "echo: sent")
    expect(estimate).to_have_text("")


def test_a_conversation_opens_at_its_latest_message(tab, owner, catalog):
    conversation = create_conversation(owner, model="openai/gpt-4o-mini", title="Long one")
    parent = None
    for i in range(30):
        parent = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role="user" if i % 2 == 0 else "assistant",
            content=f"Message number {i}\n\n" + "A line of text. " * 30,
        )
    conversation.current_leaf = parent
    conversation.save()
    tab.goto(f"/chat/{conversation.pk}/")
    expect(tab.page.locator("[data-conn]")).to_have_text("live")
    last = tab.page.locator("article.msg").last
    expect(last).to_be_in_viewport()
    expect(tab.page.locator("article.msg").first).not_to_be_in_viewport()


def test_a_models_page_and_starting_a_chat_from_it(tab, owner):
    tab.goto("/models/anthropic/claude-sonnet-4/")
    expect(tab.page.get_by_role("heading", name="Anthropic: Claude Sonnet 4")).to_be_visible()
    expect(tab.page.locator("canvas[data-chart='price-history']")).to_have_attribute("data-drawn", "2")
    expect(tab.page.locator("[data-team-cost]")).to_have_text("$0")
    tab.screenshot("model-detail")
    tab.page.get_by_role("link", name="Start a chat").click()
    expect(tab.page.locator('input[name=model][value="anthropic/claude-sonnet-4"]')).to_be_checked()
    tab.goto("/models/?reasoning=1&input=file")
    expect(tab.page.locator(".catalog-table tbody tr").first).to_be_visible()
    tab.screenshot("models-filters")
    assert tab.console_errors == []

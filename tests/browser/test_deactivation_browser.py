"""A member's open chat tab when an admin deactivates them: the tab is told at once and stops working;
nothing more is sent, stored or billed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing.models import LedgerEntry
from chat.conversations import create_conversation
from chat.models import Message

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODEL = "openai/gpt-4o-mini"


def test_a_deactivated_members_open_chat_tab_is_told_and_stops_working(new_tab, owner, superuser, catalog):
    member = new_tab(signed_in_as=owner)
    conversation = create_conversation(owner, model=MODEL)
    member.goto(f"/chat/{conversation.pk}/")
    expect(member.page.locator("[data-conn]")).to_have_text("live")
    prompt = member.page.locator("#prompt")
    prompt.fill("echo: hello")
    prompt.press("Enter")
    expect(member.page.locator("article.msg-assistant").last).to_have_attribute("data-status", "complete")

    admin = new_tab(signed_in_as=superuser)
    # Django's admin pages name no icon; the browser's guess at /favicon.ico is not what this is about.
    admin.page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    admin.goto(f"/admin/auth/user/{owner.pk}/change/")
    admin.page.uncheck("#id_is_active")
    admin.page.click("input[name=_save]")
    expect(admin.page.locator(".messagelist")).to_contain_text("was changed successfully")

    expect(member.page.locator("[data-conn]")).to_have_text("disconnected")
    expect(member.page.locator("[data-alert]")).to_have_text(re.compile("signed out|deactivated", re.IGNORECASE))
    member.screenshot("deactivated-chat")

    prompt.fill("echo: on the house?")
    prompt.press("Enter")
    expect(prompt).to_have_value("echo: on the house?")  # the tab keeps it: there is nowhere to send it
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert LedgerEntry.objects.filter(source="chat").count() == 1

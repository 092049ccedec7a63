"""Privacy in Django admin: admins see spend, never content. No message text, tool calls or results,
titles, system prompts or attachments on any chat page; chat rows, ledger rows, holds and rollups can't be
added, changed or deleted there, so no amount of money is editable."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.budgets import set_budget
from billing.models import BudgetPeriod, DailyUsage, Hold, LedgerEntry
from chat.models import Attachment, Conversation, Message, Preset

pytestmark = pytest.mark.django_db

SECRETS = ("SECRET-TITLE", "SECRET-SYSTEM", "SECRET-QUESTION", "SECRET-TOOL-RESULT", "SECRET-TOOL-CALL", "secret-photo")


@pytest.fixture
def chat_rows(owner):
    conversation = Conversation.objects.create(
        user=owner,
        model="openai/gpt-4o",
        title="SECRET-TITLE",
        system_prompt="SECRET-SYSTEM",
        total_cost=Decimal("0.5"),
    )
    asked = Message.objects.create(conversation=conversation, role="user", content="SECRET-QUESTION")
    called = Message.objects.create(
        conversation=conversation,
        parent=asked,
        role="assistant",
        content="",
        cost=Decimal("0.25"),
        tool_calls=[{"id": "c1", "function": {"name": "search", "arguments": "SECRET-TOOL-CALL"}}],
        error="SECRET-QUESTION quoted in an error",
    )
    answered = Message.objects.create(
        conversation=conversation, parent=called, role="tool", content="SECRET-TOOL-RESULT"
    )
    attachment = Attachment.objects.create(
        user=owner,
        conversation=conversation,
        name="secret-photo.png",
        mime="image/png",
        size=3,
        sha256="0" * 64,
        data=b"PNG",
    )
    preset = Preset.objects.create(user=owner, name="mine", model="openai/gpt-4o", system_prompt="SECRET-SYSTEM")
    return conversation, asked, called, answered, attachment, preset


def pages(chat_rows) -> list[str]:
    conversation, asked, called, answered, attachment, preset = chat_rows
    return [
        "/admin/chat/conversation/",
        f"/admin/chat/conversation/{conversation.pk}/change/",
        "/admin/chat/message/",
        *(f"/admin/chat/message/{message.pk}/change/" for message in (asked, called, answered)),
        "/admin/chat/attachment/",
        f"/admin/chat/attachment/{attachment.pk}/change/",
        "/admin/chat/preset/",
        f"/admin/chat/preset/{preset.pk}/change/",
    ]


def test_no_chat_page_shows_content(superuser_client, chat_rows):
    for page in pages(chat_rows):
        response = superuser_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        leaked = [secret for secret in SECRETS if secret in html]
        assert not leaked, f"{page} shows {leaked}"
    assert "0.2500000000" in superuser_client.get("/admin/chat/message/").content.decode()  # spend, yes


def test_chat_search_reads_no_content(superuser_client, chat_rows):
    html = superuser_client.get("/admin/chat/conversation/", {"q": "SECRET-TITLE"}).content.decode()
    assert "0 conversations" in html or "0 results" in html


def test_chat_rows_cannot_be_changed_or_deleted(superuser_client, chat_rows):
    conversation, asked, *_ = chat_rows
    response = superuser_client.post(
        f"/admin/chat/message/{asked.pk}/change/", {"content": "rewritten", "cost": "0", "role": "user"}
    )
    assert response.status_code == 403
    assert (
        superuser_client.post(f"/admin/chat/conversation/{conversation.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    asked.refresh_from_db()
    conversation.refresh_from_db()
    assert asked.content == "SECRET-QUESTION" and conversation.total_cost == Decimal("0.5")


@pytest.fixture
def money_rows(owner):
    entry = LedgerEntry.objects.create(
        user=owner, source="chat", requested_model="m", cost=Decimal("1.5"), cost_source="reported", status="ok"
    )
    rollup = DailyUsage.objects.create(
        day=dt.date(2026, 11, 1), user=owner, model="m", source="chat", cost=Decimal("1.5")
    )
    hold = Hold.objects.create(user=owner, amount=Decimal("2"), expires_at=timezone.now())
    budget = set_budget(user=owner, amount=Decimal("10"))
    BudgetPeriod.objects.create(budget=budget, start=dt.date(2026, 11, 1), spent=Decimal("1.5"))
    return entry, rollup, hold, budget


def test_money_records_are_read_only(superuser_client, money_rows):
    entry, rollup, hold, budget = money_rows
    for page, row, field in [
        ("billing/ledgerentry", entry, "cost"),
        ("billing/dailyusage", rollup, "cost"),
        ("billing/hold", hold, "amount"),
    ]:
        html = superuser_client.get(f"/admin/{page}/{row.pk}/change/").content.decode()
        assert f'name="{field}"' not in html
        assert superuser_client.post(f"/admin/{page}/{row.pk}/change/", {field: "0"}).status_code == 403
        assert superuser_client.post(f"/admin/{page}/{row.pk}/delete/", {"post": "yes"}).status_code == 403
        assert superuser_client.get(f"/admin/{page}/add/").status_code == 403
    entry.refresh_from_db()
    rollup.refresh_from_db()
    hold.refresh_from_db()
    assert (entry.cost, rollup.cost, hold.amount) == (Decimal("1.5"), Decimal("1.5"), Decimal("2"))

    html = superuser_client.get(f"/admin/billing/budget/{budget.pk}/change/").content.decode()
    assert 'name="periods-0-spent"' not in html and 'name="periods-0-held"' not in html
    assert superuser_client.get("/admin/billing/budgetperiod/").status_code == 404

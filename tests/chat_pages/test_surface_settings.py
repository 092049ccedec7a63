"""The conversation's surface settings (reasoning, web search, PDF engine) and what a reply shows of auto's
choice, its citations and its cache."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import CatalogModel, QualityRank
from chat import reply_extras, surface
from chat.conversations import create_conversation
from chat.models import Conversation
from gateway.models import GroupPolicy

pytestmark = pytest.mark.django_db


def test_settings_save_reasoning_web_search_and_the_pdf_engine(owner, owner_client, catalog):
    chat = create_conversation(owner, model="deepseek/deepseek-r1")
    response = owner_client.post(
        f"/chat/{chat.pk}/settings",
        {"model": "deepseek/deepseek-r1", "reasoning": "high", "web_search": "on", "pdf_engine": "mistral-ocr"},
    )
    assert response.status_code == 302
    chat.refresh_from_db()
    assert (chat.reasoning, chat.web_search, chat.pdf_engine) == ("high", True, "mistral-ocr")


def test_a_bad_reasoning_value_is_refused(owner, owner_client, catalog):
    chat = create_conversation(owner, model="deepseek/deepseek-r1")
    owner_client.post(f"/chat/{chat.pk}/settings", {"model": "deepseek/deepseek-r1", "reasoning": "extreme"})
    assert Conversation.objects.get(pk=chat.pk).reasoning == ""


def test_the_reasoning_setting_is_offered_only_for_models_that_reason(owner, owner_client, catalog):
    reasoner = create_conversation(owner, model="deepseek/deepseek-r1")
    plain = create_conversation(owner, model="openai/gpt-4o-mini")
    assert 'data-setting="reasoning"' in owner_client.get(f"/chat/{reasoner.pk}/").content.decode()
    assert 'data-setting="reasoning"' not in owner_client.get(f"/chat/{plain.pk}/").content.decode()


def test_the_web_search_switch_shows_only_to_people_a_policy_lets_search(owner, owner_client, catalog, team_group):
    chat = create_conversation(owner, model="openai/gpt-4o-mini")
    for page in ("/chat/new/", f"/chat/{chat.pk}/"):
        body = owner_client.get(page).content.decode()
        assert 'name="web_search"' in body and "data-web-search-off" not in body
    GroupPolicy.objects.create(group=team_group, allow_web_search=False)
    for page in ("/chat/new/", f"/chat/{chat.pk}/"):
        body = owner_client.get(page).content.decode()
        assert 'name="web_search"' not in body and "data-web-search-off" in body


def test_a_new_chat_keeps_the_surface_settings(owner_client, catalog):
    response = owner_client.post(
        "/chat/new/", {"model": "deepseek/deepseek-r1", "reasoning": "low", "web_search": "on", "pdf_engine": ""}
    )
    chat = Conversation.objects.get(pk=int(response["Location"].strip("/").split("/")[-1]))
    assert (chat.reasoning, chat.web_search, chat.pdf_engine) == ("low", True, "pdf-text")


def test_auto_says_why_it_chose_from_the_admin_ranking_or_the_default_order(catalog):
    model = CatalogModel.objects.get(pk="openai/gpt-4o")
    assert "default quality order" in reply_extras.auto_reason("orweb/auto:quality", model)
    QualityRank.objects.create(model=model, rank=2)
    assert "ranked 2 in your admins' quality order" in reply_extras.auto_reason("orweb/auto", model)
    assert "cheapest" in reply_extras.auto_reason("orweb/auto:cost", model)
    assert reply_extras.auto_reason("openai/gpt-4o", model) == ""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.com/a", True),
        ("http://example.com/b", True),
        ("javascript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("https:///no-host", False),
        ("//example.com/relative", False),
    ],
)
def test_only_http_links_become_citations(url, shown):
    annotations = [{"type": "url_citation", "url_citation": {"url": url, "title": "<b>t</b>"}}]
    assert bool(surface.citations(annotations)) is shown


def test_a_citation_title_is_escaped_where_shown(owner, catalog):
    from chat.models import Message
    from chat.partials import message_view, render_message

    chat = create_conversation(owner, model="openai/gpt-4.1-mini")
    reply = Message.objects.create(
        conversation=chat,
        role="assistant",
        content="See sources.",
        annotations=[{"type": "url_citation", "url_citation": {"url": "https://e.com/", "title": "<img src=x>"}}],
    )
    html = render_message(message_view(reply, {"index": 1, "count": 1, "prev_id": None, "next_id": None}, []))
    assert "&lt;img src=x&gt;" in html and "<img src=x>" not in html
    assert 'rel="noopener nofollow"' in html


def test_the_cache_saving_is_reads_at_the_read_price_less_the_write_premium():
    saved = surface.cache_saving(Decimal("0.000003"), Decimal("0.0000003"), Decimal("0.00000375"), 1000, 200)
    assert saved == 1000 * (Decimal("0.000003") - Decimal("0.0000003")) - 200 * (
        Decimal("0.00000375") - Decimal("0.000003")
    )
    assert surface.cache_saving(None, None, None, 1000, 0) == 0


def test_breakpoints_go_on_long_system_prompts_and_the_latest_files_only_for_models_that_need_them():
    needs = surface.Features(explicit_cache=True)
    file_part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,AA=="}}
    messages = [
        {"role": "system", "content": "x" * surface.CACHE_MIN_CHARS},
        {"role": "user", "content": [{"type": "text", "text": "read"}, file_part]},
    ]
    marked = surface.mark_cacheable(messages, needs)
    assert marked[0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert marked[1]["content"][1]["cache_control"] == {"type": "ephemeral"}
    assert messages[1]["content"][1] == file_part  # the history itself is not changed
    assert surface.mark_cacheable(messages, surface.Features()) is messages
    short = [{"role": "system", "content": "short"}]
    assert surface.mark_cacheable(short, needs) == short

"""The models page at /models/: access, search, filters, sorting, htmx partials, scale."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext

from catalog.models import CatalogModel
from catalog.sync import sync_catalog
from tests.helpers.catalog import model_entry

pytestmark = pytest.mark.django_db

TEXT_ONLY = {"input_modalities": ["text"], "output_modalities": ["text"]}


@pytest.fixture
def mixed_catalog():
    sync_catalog(
        [
            model_entry("openai/gpt-4o", name="OpenAI: GPT-4o", expiration_date="2027-01-15"),
            model_entry(
                "anthropic/claude-sonnet-4",
                name="Anthropic: Claude Sonnet 4",
                context_length=200000,
                pricing={"prompt": "0.000003", "completion": "0.000015"},
            ),
            model_entry(
                "meta-llama/llama-3.1-8b-instruct",
                name="Meta: Llama 3.1 8B",
                context_length=16000,
                architecture=TEXT_ONLY,
                supported_parameters=["max_tokens"],
                pricing={"prompt": "0.00000002", "completion": "0.00000003"},
            ),
            model_entry(
                "mistralai/mistral-7b-instruct:free",
                name="Mistral 7B (free)",
                context_length=32768,
                architecture=TEXT_ONLY,
                supported_parameters=[],
                pricing={"prompt": "0", "completion": "0"},
            ),
            model_entry(
                "openrouter/auto",
                name="Auto Router",
                context_length=2000000,
                pricing={"prompt": "-1", "completion": "-1"},
            ),
            model_entry("old/retired", name="Old Retired"),
        ]
    )
    sync_catalog([model_entry(m.pk, **m.raw) for m in CatalogModel.objects.exclude(pk="old/retired")])


def listed(response) -> list[str]:
    """Model ids in the results table, in page order."""
    return re.findall(r'<code class="model-id">([^<]+)</code>', response.content.decode())


def test_it_requires_login(client):
    response = client.get("/models/")

    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_it_lists_available_models_with_prices_per_million(staff_client, mixed_catalog):
    response = staff_client.get("/models/")
    html = response.content.decode()

    assert response.status_code == 200
    assert listed(response) == [
        "anthropic/claude-sonnet-4",
        "openrouter/auto",
        "meta-llama/llama-3.1-8b-instruct",
        "mistralai/mistral-7b-instruct:free",
        "openai/gpt-4o",
    ]
    assert "$2.50" in html and "$10.00" in html and "$0.02" in html
    assert "price unknown" in html and ">free<" in html
    assert "retires Jan 15, 2027" in html
    assert 'aria-current="page"' in html and "<html" in html


def test_search_matches_every_word_in_the_name_or_id(staff_client, mixed_catalog):
    assert listed(staff_client.get("/models/", {"q": "claude"})) == ["anthropic/claude-sonnet-4"]
    assert listed(staff_client.get("/models/", {"q": "OPENAI gpt"})) == ["openai/gpt-4o"]
    assert listed(staff_client.get("/models/", {"q": "llama 8b"})) == ["meta-llama/llama-3.1-8b-instruct"]
    assert listed(staff_client.get("/models/", {"q": "meta-llama/"})) == ["meta-llama/llama-3.1-8b-instruct"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"image": "1"}, ["anthropic/claude-sonnet-4", "openrouter/auto", "openai/gpt-4o"]),
        ({"tools": "1"}, ["anthropic/claude-sonnet-4", "openrouter/auto", "openai/gpt-4o"]),
        ({"free": "1"}, ["mistralai/mistral-7b-instruct:free"]),
        ({"min_context": "128000"}, ["anthropic/claude-sonnet-4", "openrouter/auto", "openai/gpt-4o"]),
        ({"min_context": "200000"}, ["anthropic/claude-sonnet-4", "openrouter/auto"]),
        (
            {"max_prompt": "2.50"},
            ["meta-llama/llama-3.1-8b-instruct", "mistralai/mistral-7b-instruct:free", "openai/gpt-4o"],
        ),
        ({"max_prompt": "0"}, ["mistralai/mistral-7b-instruct:free"]),
        (
            {"max_completion": "12"},
            ["meta-llama/llama-3.1-8b-instruct", "mistralai/mistral-7b-instruct:free", "openai/gpt-4o"],
        ),
        ({"image": "1", "max_completion": "12"}, ["openai/gpt-4o"]),
        ({"unavailable": "1", "q": "old"}, ["old/retired"]),
    ],
)
def test_each_filter_narrows_the_list(staff_client, mixed_catalog, params, expected):
    assert listed(staff_client.get("/models/", params)) == expected


def test_unavailable_models_are_hidden_unless_asked_for_and_then_marked(staff_client, mixed_catalog):
    assert "old/retired" not in listed(staff_client.get("/models/"))

    response = staff_client.get("/models/", {"unavailable": "1"})

    assert "old/retired" in listed(response) and "badge-off" in response.content.decode()


def test_filters_are_kept_in_the_form_for_a_shared_url(staff_client, mixed_catalog):
    html = staff_client.get(
        "/models/", {"q": "gpt", "tools": "1", "min_context": "128000", "max_prompt": "3"}
    ).content.decode()

    assert 'value="gpt"' in html
    assert re.search(r'name="tools" value="1" checked', html)
    assert re.search(r'<option value="128000" selected>', html)
    assert 'name="max_prompt"' in html and 'value="3"' in html


def test_an_invalid_filter_is_ignored_and_the_rest_apply(staff_client, mixed_catalog):
    response = staff_client.get("/models/", {"max_prompt": "cheap", "min_context": "7", "sort": "evil", "q": "gpt"})

    assert response.status_code == 200 and listed(response) == ["openai/gpt-4o"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (
            "name",
            [
                "anthropic/claude-sonnet-4",
                "openrouter/auto",
                "meta-llama/llama-3.1-8b-instruct",
                "mistralai/mistral-7b-instruct:free",
                "openai/gpt-4o",
            ],
        ),
        (
            "-name",
            [
                "openai/gpt-4o",
                "mistralai/mistral-7b-instruct:free",
                "meta-llama/llama-3.1-8b-instruct",
                "openrouter/auto",
                "anthropic/claude-sonnet-4",
            ],
        ),
        (
            "context",
            [
                "meta-llama/llama-3.1-8b-instruct",
                "mistralai/mistral-7b-instruct:free",
                "openai/gpt-4o",
                "anthropic/claude-sonnet-4",
                "openrouter/auto",
            ],
        ),
        (
            "-context",
            [
                "openrouter/auto",
                "anthropic/claude-sonnet-4",
                "openai/gpt-4o",
                "mistralai/mistral-7b-instruct:free",
                "meta-llama/llama-3.1-8b-instruct",
            ],
        ),
        (
            "prompt",
            [
                "mistralai/mistral-7b-instruct:free",
                "meta-llama/llama-3.1-8b-instruct",
                "openai/gpt-4o",
                "anthropic/claude-sonnet-4",
                "openrouter/auto",
            ],
        ),
        (
            "-prompt",
            [
                "anthropic/claude-sonnet-4",
                "openai/gpt-4o",
                "meta-llama/llama-3.1-8b-instruct",
                "mistralai/mistral-7b-instruct:free",
                "openrouter/auto",
            ],
        ),
        (
            "completion",
            [
                "mistralai/mistral-7b-instruct:free",
                "meta-llama/llama-3.1-8b-instruct",
                "openai/gpt-4o",
                "anthropic/claude-sonnet-4",
                "openrouter/auto",
            ],
        ),
        (
            "-completion",
            [
                "anthropic/claude-sonnet-4",
                "openai/gpt-4o",
                "meta-llama/llama-3.1-8b-instruct",
                "mistralai/mistral-7b-instruct:free",
                "openrouter/auto",
            ],
        ),
    ],
)
def test_sorting_by_each_column_with_unknown_prices_last(staff_client, mixed_catalog, sort, expected):
    assert listed(staff_client.get("/models/", {"sort": sort})) == expected


def test_a_column_header_sorts_and_a_second_click_reverses(staff_client, mixed_catalog):
    html = staff_client.get("/models/", {"q": "o", "sort": "context"}).content.decode()

    assert re.search(r'aria-sort="ascending" class="num">\s*<a class="sort-link" href="\?q=o&amp;sort=-context"', html)
    assert 'href="?q=o&amp;sort=prompt"' in html
    assert '<input type="hidden" name="sort" value="context" form="catalog-filters">' in html


def test_an_htmx_request_gets_only_the_results(staff_client, mixed_catalog):
    response = staff_client.get("/models/", {"q": "claude"}, headers={"HX-Request": "true"})
    html = response.content.decode()

    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html and "catalog-filters" in html
    assert listed(response) == ["anthropic/claude-sonnet-4"]
    assert "HX-Request" in response["Vary"]


def test_an_htmx_history_restore_gets_the_whole_page(staff_client, mixed_catalog):
    response = staff_client.get("/models/", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})

    assert "<html" in response.content.decode()


def test_nothing_matching_shows_a_clear_empty_state(staff_client, mixed_catalog):
    response = staff_client.get("/models/", {"q": "no such model"})

    assert listed(response) == []
    assert "No models match these filters." in response.content.decode()


def test_every_page_links_to_the_models_page(rf, owner):
    request = rf.get("/elsewhere/")
    request.user = owner

    assert re.search(r'<a href="/models/"\s*>Models</a>', render_to_string("base.html", request=request))


def test_450_models_page_in_a_bounded_number_of_queries(staff_client):
    sync_catalog([model_entry(f"vendor{i % 9}/model-{i:03d}") for i in range(450)])

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get("/models/", {"sort": "-prompt"})
    with CaptureQueriesContext(connection) as later:
        last = staff_client.get("/models/", {"sort": "-prompt", "page": "5"})

    assert len(listed(response)) == 100 and len(listed(last)) == 50
    assert "page 1 of 5" in response.content.decode()
    assert 'rel="next" href="?sort=-prompt&amp;page=2"' in response.content.decode()
    # the session, the user, the count, the rows, the makers, the person's budget alert banners (every page)
    assert len(queries) <= 6 and len(later) == len(queries)

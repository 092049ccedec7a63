"""The per-use fees a request asks for (web search, PDF parsing, cache writes, generated images), measured
from its messages and parameters the same way for the hold, the price shown before Send and batch estimates.

Which price applies depends on the model that serves (`billing.pricing.Fees` resolves that); here is only
what the request says: how many searches with how many results, how many PDF pages with which engine, how
much of the prompt is marked for caching and for how long, whether an image is asked for.
"""

from __future__ import annotations

from typing import Any

from billing.pricing import Fees
from openrouter import fees as published

SEARCHES_PER_CALL = 1  # OpenRouter's server tool searches once per turn unless the model asks again


def _plugin(params: dict[str, Any], plugin_id: str) -> dict[str, Any] | None:
    for plugin in params.get("plugins") or ():
        if isinstance(plugin, dict) and plugin.get("id") == plugin_id:
            return plugin
    return None


def _search_tool(params: dict[str, Any]) -> dict[str, Any] | None:
    for tool in params.get("tools") or ():
        if isinstance(tool, dict) and tool.get("type") == published.WEB_SEARCH_TOOL:
            return tool
    return _plugin(params, "web")


def _parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        part
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict)
    ]


def file_pdf_pages(part: dict[str, Any]) -> int:
    """Pages of a `file` part's PDF (0 for another kind of file)."""
    file = part.get("file") if part.get("type") == "file" else None
    decoded = published.data_url(file.get("file_data")) if isinstance(file, dict) else None
    if decoded is None or not published.is_pdf(decoded[1]):
        return 0
    return published.pdf_pages(decoded[1])


def request_fees(messages: list[dict[str, Any]], params: dict[str, Any], prompt_tokens: int) -> Fees:
    """What this request will pay per use, before knowing its model."""
    search = _search_tool(params)
    parser = _plugin(params, "file-parser")
    pdf = parser.get("pdf") if parser else None
    parts = _parts(messages)
    marks = [part["cache_control"] for part in parts if isinstance(part.get("cache_control"), dict)]
    if isinstance(params.get("cache_control"), dict):
        marks.append(params["cache_control"])
    reasoning = params.get("reasoning") if isinstance(params.get("reasoning"), dict) else None
    effort = None
    if reasoning is not None and reasoning.get("enabled") is not False:
        effort = reasoning.get("effort") if isinstance(reasoning.get("effort"), str) else "medium"
    return Fees(
        web_searches=SEARCHES_PER_CALL if search is not None else 0,
        web_results=_results(search),
        web_engine=search.get("engine") if search is not None and isinstance(search.get("engine"), str) else None,
        pdf_pages=sum(file_pdf_pages(part) for part in parts),
        pdf_engine=pdf.get("engine") if isinstance(pdf, dict) and isinstance(pdf.get("engine"), str) else None,
        # Every token up to the last breakpoint may be written; the whole prompt bounds that.
        cache_write_tokens=prompt_tokens if marks else 0,
        cache_ttl="1h" if any(mark.get("ttl") == "1h" for mark in marks) else "5m",
        images_out=1 if "image" in (params.get("modalities") or ()) else 0,
        reasoning_effort=effort,
    )


def _results(search: dict[str, Any] | None) -> int:
    value = search.get("max_results") if search is not None else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return published.DEFAULT_SEARCH_RESULTS

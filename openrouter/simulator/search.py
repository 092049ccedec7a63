"""The web search server tool (``tools: [{"type": "openrouter:web_search", "max_results"?, "engine"?}]``, or
the deprecated ``web`` plugin and ``:online`` variant): one search per request, its results cited as
``url_citation`` annotations, its fee in ``usage.cost`` and counted in ``server_tool_use_details``.

The fee is the endpoint's own ``pricing.web_search`` per search when it has native search (and ``engine``
isn't ``exa``), else Exa's: $0.007 a search including 10 results, $0.001 per result beyond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openrouter.fees import DEFAULT_SEARCH_RESULTS, WEB_SEARCH_TOOL, exa_search_fee
from openrouter.simulator.errors import SimError
from openrouter.simulator.state import Endpoint
from openrouter.simulator.textgen import seed_of, word

MAX_RESULTS = 25


@dataclass
class Search:
    """The searches one request made and what they cost."""

    requests: int = 0
    results: int = 0
    fee: Decimal = Decimal(0)
    citations: list[dict[str, Any]] = field(default_factory=list)


def search_options(body: dict[str, Any], variant: str = "") -> dict[str, Any] | None:
    """The search the request asks for (the tool, the ``web`` plugin or ``:online``), validated; None if none."""
    options = None
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and tool.get("type") == WEB_SEARCH_TOOL:
            options = tool
    for plugin in body.get("plugins") or ():
        if isinstance(plugin, dict) and plugin.get("id") == "web":
            options = options or plugin
    if options is None and variant == ":online":
        options = {}
    if options is None:
        return None
    results = options.get("max_results", DEFAULT_SEARCH_RESULTS)
    if isinstance(results, bool) or not isinstance(results, int) or not 1 <= results <= MAX_RESULTS:
        raise SimError(400, f"max_results: expected an integer from 1 to {MAX_RESULTS}")
    if options.get("engine") not in (None, "native", "exa"):
        raise SimError(400, "engine: expected 'native' or 'exa'")
    return {**options, "max_results": results}


def run_search(options: dict[str, Any], endpoint: Endpoint, query: str, content: str) -> Search:
    """One search for `query`: `max_results` results, each cited over the part of `content` it supports."""
    results = options["max_results"]
    native = endpoint.has_price("web_search") and options.get("engine") != "exa"
    fee = endpoint.price("web_search") if native else exa_search_fee(results)
    seed = seed_of("search", query)
    citations = []
    step = max(len(content) // results, 1)
    for n in range(results):
        topic = word(seed_of(seed, n))
        start = min(n * step, len(content))
        citations.append(
            {
                "type": "url_citation",
                "url_citation": {
                    "url": f"https://example.org/{topic}/{seed_of(seed, n, 'page') % 10_000}",
                    "title": f"{topic.capitalize()} — result {n + 1}",
                    "content": f"A page about {topic}, found for the question.",
                    "start_index": start,
                    "end_index": min(start + step, len(content)),
                },
            }
        )
    return Search(requests=1, results=results, fee=fee, citations=citations)

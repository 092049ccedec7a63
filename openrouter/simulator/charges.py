"""What one generation is billed: its prompt (plain, read from the cache, written to it), its output
(reasoning included), its request and generated images at the serving endpoint's prices, plus per-use fees
(web search, OCR pages); and the ``usage`` object that reports it.

Fees for work done before the model answers (a search, a parse) are kept whatever happens next. The rest
follows OpenRouter's rule for failures: a generation that ends in an error, or ends with no completion token
and a blank finish reason (zero-completion insurance), is not charged, so it pays those fees alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openrouter.fees import LONG_CACHE_WRITE, OCR_PAGE
from openrouter.simulator.caching import CacheUse
from openrouter.simulator.files import ParsedFiles
from openrouter.simulator.search import Search
from openrouter.simulator.state import Endpoint


@dataclass
class Charges:
    endpoint: Endpoint
    prompt_tokens: int
    cache: CacheUse = field(default_factory=CacheUse)
    files: ParsedFiles = field(default_factory=ParsedFiles)
    search: Search = field(default_factory=Search)

    def _read_price(self) -> Decimal:
        e = self.endpoint
        return e.price("input_cache_read") if e.has_price("input_cache_read") else e.price("prompt")

    def _write_price(self) -> Decimal:
        e = self.endpoint
        if self.cache.ttl == "1h":
            return e.price("prompt") * LONG_CACHE_WRITE
        return e.price("input_cache_write") if e.has_price("input_cache_write") else e.price("prompt")

    def prompt_cost(self) -> Decimal:
        cache = self.cache
        plain = self.prompt_tokens - cache.cached_tokens - cache.write_tokens
        cost = plain * self.endpoint.price("prompt")
        if cache.cached_tokens:
            cost += cache.cached_tokens * self._read_price()
        if cache.write_tokens:
            cost += cache.write_tokens * self._write_price()
        return cost

    def completion_cost(self, completion_tokens: int, images: int) -> Decimal:
        cost = completion_tokens * self.endpoint.price("completion")
        return cost + images * self.endpoint.price("image") if images else cost

    def tool_fees(self) -> Decimal:
        """The search and OCR fees: paid even when the generation fails."""
        fee = self.search.fee
        return fee + self.files.ocr_pages * OCR_PAGE if self.files.ocr_pages else fee

    def fees(self) -> Decimal:
        return self.endpoint.price("request") + self.tool_fees()

    def cost(self, completion_tokens: int, images: int = 0) -> Decimal:
        return self.prompt_cost() + self.completion_cost(completion_tokens, images) + self.fees()

    def billed(self, completion_tokens: int, images: int, finish_reason: str | None) -> Decimal:
        """What a generation that ended this way is charged: nothing but the tool fees after an error or
        with no completion token and a blank finish reason, else its full cost."""
        if finish_reason == "error" or (not completion_tokens and not finish_reason):
            return self.tool_fees()
        return self.cost(completion_tokens, images)

    def cache_discount(self) -> Decimal | None:
        """What caching saved against the plain prompt price (negative when writes cost more than reads saved)."""
        cache = self.cache
        if not cache.cached_tokens and not cache.write_tokens:
            return None
        return self.prompt_tokens * self.endpoint.price("prompt") - self.prompt_cost()

    def usage(self, completion_tokens: int, reasoning_tokens: int, images: int, *, with_cost: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
            "cost": float(self.cost(completion_tokens, images)),
            "is_byok": False,
            "prompt_tokens_details": {
                "cached_tokens": self.cache.cached_tokens,
                "cache_write_tokens": self.cache.write_tokens,
                "audio_tokens": 0,
            },
            "cost_details": {
                "upstream_inference_cost": None,
                "upstream_inference_prompt_cost": float(self.prompt_cost()),
                "upstream_inference_completions_cost": float(self.completion_cost(completion_tokens, images)),
            },
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens, "image_tokens": 0},
        }
        if self.search.requests:
            usage["server_tool_use_details"] = {"web_search_requests": self.search.requests}
        if not with_cost:
            del usage["cost"]
        return usage

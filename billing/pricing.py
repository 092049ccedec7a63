"""What a call may cost at most (for holds), what it is expected to cost (the price shown before Send), and
what it cost by catalog price (when upstream didn't say).

Beyond tokens a call may pay per use: web searches, OCR pages, cache writes and generated images
(`Fees`, measured from the request by the gateway). The hold covers them at the price the served model's
catalog row and OpenRouter's published fees (`openrouter.fees`) give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from catalog.models import CatalogModel
from openrouter import fees as published

# Our token count is an approximation of the provider's; the hold adds this much on top so that the
# worst case still covers the prompt when the provider's tokenizer counts more.
PROMPT_MARGIN = Decimal("1.25")
PROMPT_MARGIN_TOKENS = 16
# What a reply usually takes, for the low end of the estimate shown before Send (the hold is the high end).
EXPECTED_REPLY_TOKENS = 300
EXPECTED_REASONING_TOKENS = {"none": 0, "minimal": 200, "low": 800, "medium": 2000, "high": 4000, "xhigh": 8000}


@dataclass(frozen=True)
class Fees:
    """What a request asks for that is paid per use, before knowing which model serves it."""

    web_searches: int = 0
    web_results: int = published.DEFAULT_SEARCH_RESULTS
    web_engine: str | None = None  # "native" / "exa"; None: native where the model prices it, else Exa
    pdf_pages: int = 0
    pdf_engine: str | None = None  # None: the model's native file input, else mistral-ocr (OpenRouter's default)
    cache_write_tokens: int = 0
    cache_ttl: str = "5m"
    images_out: int = 0
    reasoning_effort: str | None = None  # for the expected reply length only

    def per_use(self, model: CatalogModel) -> Decimal:
        """Searches, OCR pages and generated images on this model."""
        total = Decimal(0)
        if self.web_searches:
            native = model.web_search_price is not None and self.web_engine != "exa"
            each = model.web_search_price if native else published.exa_search_fee(self.web_results)
            total += self.web_searches * each
        if self.pdf_pages and self.ocr(model):
            total += self.pdf_pages * published.OCR_PAGE
        if self.images_out and "image" in (model.output_modalities or []):
            total += self.images_out * model.image_price
        return total

    def ocr(self, model: CatalogModel) -> bool:
        """Whether PDFs go through the paid OCR engine on this model."""
        if self.pdf_engine is not None:
            return self.pdf_engine == "mistral-ocr"
        return "file" not in (model.input_modalities or [])

    def cache_write_premium(self, model: CatalogModel, tokens: int) -> Decimal:
        """What writing `tokens` of the prompt to the cache costs above the plain prompt price (never negative):
        the model's `input_cache_write` price for five minutes, twice the prompt price for an hour."""
        if not tokens or model.cache_write_price is None or model.prompt_price is None:
            return Decimal(0)
        long = self.cache_ttl == "1h"
        price = model.prompt_price * published.LONG_CACHE_WRITE if long else model.cache_write_price
        return tokens * max(price - model.prompt_price, Decimal(0))


NO_FEES = Fees()


def held_prompt_tokens(prompt_tokens: int) -> int:
    """Our count of the prompt, with the margin for a provider's tokenizer counting more."""
    return math.ceil(prompt_tokens * PROMPT_MARGIN) + PROMPT_MARGIN_TOKENS


def worst_case(
    model: CatalogModel, prompt_tokens: int, max_tokens: int, images: int = 0, fees: Fees = NO_FEES
) -> Decimal:
    """The most this call can cost: prompt (with margin, cache writes at their price) + max_tokens of output
    (reasoning included: it is billed as output and counts against max_tokens) + per request + images in
    + per-use fees."""
    held = held_prompt_tokens(prompt_tokens)
    cached = min(held_prompt_tokens(fees.cache_write_tokens), held) if fees.cache_write_tokens else 0
    return _cost(model, held, cached, max_tokens, images, fees)


def expected(
    model: CatalogModel, prompt_tokens: int, max_tokens: int, images: int = 0, fees: Fees = NO_FEES
) -> Decimal:
    """What this call will likely cost: the prompt as counted, a usual reply (longer when reasoning), fees."""
    reply = EXPECTED_REPLY_TOKENS + EXPECTED_REASONING_TOKENS.get(fees.reasoning_effort or "none", 0)
    cached = min(fees.cache_write_tokens, prompt_tokens)
    return _cost(model, prompt_tokens, cached, min(reply, max_tokens), images, fees)


def _cost(
    model: CatalogModel, prompt_tokens: int, cache_tokens: int, completion_tokens: int, images: int, fees: Fees
) -> Decimal:
    if not model.price_known:
        raise ValueError(f"{model.id} has no known price")
    return (
        prompt_tokens * model.prompt_price
        + fees.cache_write_premium(model, cache_tokens)
        + completion_tokens * model.completion_price
        + model.request_price
        + images * model.image_price
        + fees.per_use(model)
    )


def estimate(model: CatalogModel | None, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """The cost at catalog price, for usage that came without a cost (0 only for a model we don't know)."""
    if model is None or not model.price_known:
        return Decimal(0)
    return prompt_tokens * model.prompt_price + completion_tokens * model.completion_price + model.request_price

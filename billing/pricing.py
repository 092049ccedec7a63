"""What a call may cost at most (for holds) and what it cost by catalog price (when upstream didn't say)."""

from __future__ import annotations

import math
from decimal import Decimal

from catalog.models import CatalogModel

# Our token count is an approximation of the provider's; the hold adds this much on top so that the
# worst case still covers the prompt when the provider's tokenizer counts more.
PROMPT_MARGIN = Decimal("1.25")
PROMPT_MARGIN_TOKENS = 16


def worst_case(model: CatalogModel, prompt_tokens: int, max_tokens: int, images: int = 0) -> Decimal:
    """The most this call can cost: prompt (with margin) + max_tokens of output + per-request + images."""
    if not model.price_known:
        raise ValueError(f"{model.id} has no known price")
    held_prompt = math.ceil(prompt_tokens * PROMPT_MARGIN) + PROMPT_MARGIN_TOKENS
    return (
        held_prompt * model.prompt_price
        + max_tokens * model.completion_price
        + model.request_price
        + images * model.image_price
    )


def estimate(model: CatalogModel | None, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """The cost at catalog price, for usage that came without a cost (0 only for a model we don't know)."""
    if model is None or not model.price_known:
        return Decimal(0)
    return prompt_tokens * model.prompt_price + completion_tokens * model.completion_price + model.request_price

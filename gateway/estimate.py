"""The price of a message before it is sent: what the hold would be, and what the call will likely cost.

It decides the call exactly as admission would (`gateway.admission.plan`: policy, the model auto would
pick, max_tokens, fallbacks, per-use fees) with the same token count and catalog prices, and takes nothing:
no hold, no rate-limit token. So the high end is the hold the call will place, and "remaining" is what the
budget keeps if the worst case happens. Synchronous (database reads); async callers use `orweb.aio`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.budgets import remaining_for
from billing.pricing import expected
from gateway import context as call_context
from gateway.admission import model_ids, plan
from gateway.types import ChatRequest


@dataclass(frozen=True)
class Estimate:
    """USD: `low` the likely cost, `high` the worst case (the hold); `fees` the per-use part of `high`
    (searches, OCR pages, cache-write premium, generated images); `remaining` the budget left after `high`
    (None when no budget applies)."""

    low: Decimal
    high: Decimal
    prompt_tokens: int
    fees: Decimal
    remaining: Decimal | None


def estimate(user: Any, request: ChatRequest) -> Estimate:
    """The estimate for `request` sent by `user` now; a GatewayError when admission would refuse it for
    policy or fit (not for budget: the estimate is how the caller sees it wouldn't fit)."""
    planned = plan(call_context.for_user(user, model_ids(request)), request)
    shape, model = planned.shape, planned.model
    high = planned.worst_case()
    low = min(expected(model, shape.prompt_tokens, planned.max_tokens, shape.images, shape.fees), high)
    budget = remaining_for(user)
    return Estimate(
        low=low,
        high=high,
        prompt_tokens=shape.prompt_tokens,
        fees=shape.fees.per_use(model) + shape.fees.cache_write_premium(model, shape.fees.cache_write_tokens),
        remaining=None if budget is None else budget - high,
    )

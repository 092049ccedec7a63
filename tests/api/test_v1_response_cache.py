"""`X-OpenRouter-Cache: true` on a /v1 call is passed on to OpenRouter's response cache: an identical
second request is answered again as a new generation billed nothing, and the ledger says $0 for it. Without
the header every request is a new, billed generation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import LedgerEntry
from tests.helpers.billing import assert_ledger_matches_simulator

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai/gpt-4o-mini"
CACHE = {"X-OpenRouter-Cache": "true"}


def _ask(api, *, stream: bool = False, headers: dict[str, str] | None = None) -> Decimal:
    """One call; the cost its usage reports."""
    messages = [{"role": "user", "content": "the same question"}]
    if not stream:
        reply = api.chat.completions.create(model=MODEL, messages=messages, max_tokens=50, extra_headers=headers)
        return Decimal(str(reply.usage.model_extra["cost"]))
    chunks = list(
        api.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
    )
    return Decimal(str(chunks[-1].usage.model_extra["cost"]))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
def test_an_identical_request_asking_the_cache_costs_nothing(api, simulator, stream):
    first = _ask(api, stream=stream, headers=CACHE)
    second = _ask(api, stream=stream, headers=CACHE)
    assert first > 0 and second == 0
    entries = list(LedgerEntry.objects.order_by("pk"))
    assert [e.cost for e in entries] == [first, Decimal(0)]
    assert len({e.generation_id for e in entries}) == 2
    assert_ledger_matches_simulator(simulator)


def test_without_the_header_every_request_is_billed(api, simulator):
    costs = [_ask(api), _ask(api)]
    assert all(cost > 0 for cost in costs)
    assert sum(e.cost for e in LedgerEntry.objects.all()) == sum(costs)
    assert_ledger_matches_simulator(simulator)

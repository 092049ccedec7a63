"""Rate limits per user from the most specific setting, refused with a retry time; Redis down fails closed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from billing.budgets import set_budget
from billing.models import LedgerEntry, RateLimit
from gateway import metered
from orweb.errors import BudgetExceeded, InvalidRequest, RateLimitExceeded, ServiceUnavailable
from tests.helpers.billing import effective_limits
from tests.helpers.metering import ask, in_thread, upstream_calls


@pytest.mark.django_db
def test_the_users_row_wins_then_the_most_generous_group_then_defaults(owner, settings):
    settings.ORWEB_DEFAULT_CONCURRENT = 3
    for name, rpm, tpm in (("a", 10, 1000), ("b", 20, None)):
        group = Group.objects.create(name=name)
        group.user_set.add(owner)
        RateLimit.objects.create(group=group, requests_per_minute=rpm, tokens_per_minute=tpm)
    limits = effective_limits(owner)
    assert (limits.requests_per_minute, limits.tokens_per_minute, limits.concurrent_streams) == (20, 1000, 3)
    RateLimit.objects.create(user=owner, requests_per_minute=5)
    assert effective_limits(owner).requests_per_minute == 5


@pytest.mark.django_db(transaction=True)
async def test_requests_per_minute_are_refused_with_a_retry_after(simulator, catalog, owner):
    await in_thread(RateLimit.objects.create)(user=owner, requests_per_minute=2)
    for _ in range(2):
        await metered.complete(owner, ask(), source="api")
    with pytest.raises(RateLimitExceeded) as refused:
        await metered.complete(owner, ask(), source="api")
    assert refused.value.status == 429 and 1 <= refused.value.retry_after <= 60
    assert upstream_calls(simulator) == 2


@pytest.mark.django_db(transaction=True)
async def test_tokens_per_minute_count_prompt_and_max_tokens(simulator, catalog, owner):
    await in_thread(RateLimit.objects.create)(user=owner, tokens_per_minute=1000)
    await metered.complete(owner, ask(max_tokens=600), source="api")
    with pytest.raises(RateLimitExceeded):
        await metered.complete(owner, ask(max_tokens=600), source="api")
    with pytest.raises(InvalidRequest) as too_big:
        await metered.complete(owner, ask(max_tokens=5000), source="api")
    assert too_big.value.param == "max_tokens"


@pytest.mark.django_db(transaction=True)
async def test_concurrent_streams_are_limited_and_given_back(simulator, catalog, owner):
    await in_thread(RateLimit.objects.create)(user=owner, concurrent_streams=1)
    async with metered.stream(owner, ask(), source="chat") as first:
        with pytest.raises(RateLimitExceeded):
            async with metered.stream(owner, ask(), source="chat"):
                pass
        [event async for event in first]
    async with metered.stream(owner, ask(), source="chat") as again:
        [event async for event in again]
    assert again.result.status == "ok"


@pytest.mark.django_db(transaction=True)
async def test_redis_down_fails_closed(simulator, catalog, owner, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(ServiceUnavailable) as refused:
        await metered.complete(owner, ask(), source="api")
    assert refused.value.status == 503
    assert upstream_calls(simulator) == 0
    assert await in_thread(LedgerEntry.objects.count)() == 0


@pytest.mark.django_db(transaction=True)
async def test_database_down_fails_closed(simulator, catalog, owner, settings):
    from django.db import connections

    database = connections["default"]
    real = dict(database.settings_dict)
    # A pool keeps the connections it has: drop it, so the next one is made for the dead port.
    database.close_pool()
    database.settings_dict["PORT"] = 1
    if pool := database.settings_dict["OPTIONS"].get("pool"):
        database.settings_dict["OPTIONS"] = {**database.settings_dict["OPTIONS"], "pool": {**pool, "timeout": 1}}
    try:
        with pytest.raises(ServiceUnavailable) as refused:
            await metered.complete(owner, ask(), source="api")
    finally:
        database.close_pool()
        database.settings_dict.update(real)
    assert refused.value.status == 503
    assert upstream_calls(simulator) == 0


@pytest.mark.django_db(transaction=True)
async def test_a_stream_refused_by_its_budget_gives_its_slot_back(simulator, catalog, owner):
    await in_thread(RateLimit.objects.create)(user=owner, concurrent_streams=1)
    await in_thread(set_budget)(user=owner, amount=Decimal("0"))
    with pytest.raises(BudgetExceeded):
        async with metered.stream(owner, ask(), source="chat"):
            pass
    await in_thread(set_budget)(user=owner, amount=Decimal("5"))
    async with metered.stream(owner, ask(), source="chat") as call:
        [event async for event in call]
    assert call.result.status == "ok"
    assert upstream_calls(simulator) == 1

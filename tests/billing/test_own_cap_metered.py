"""A person's own cap on the real metered path, with the simulator upstream: a call it can't cover is refused
before any request leaves, one it can is settled against it, and the ledger matches what was billed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.budgets import set_budget
from billing.caps import remove_own_cap, set_own_cap
from billing.models import BudgetPeriod
from gateway import metered
from orweb.errors import BudgetExceeded
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import ask, in_thread, upstream_calls

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_cap_refuses_before_any_upstream_request_and_then_lets_calls_through(simulator, catalog, owner):
    await in_thread(set_budget)(user=owner, amount=Decimal("5"))
    cap = await in_thread(set_own_cap)(owner, Decimal("0"), "day")
    with pytest.raises(BudgetExceeded, match=r"^Your own daily cap of \$0 can't cover this request") as refused:
        await metered.complete(owner, ask(), source="api")
    assert "usage page" in str(refused.value)
    assert upstream_calls(simulator) == 0

    await in_thread(set_own_cap)(owner, Decimal("1"), "day")
    completion = await metered.complete(owner, ask(), source="api")
    assert upstream_calls(simulator) == 1
    period = await in_thread(BudgetPeriod.objects.get)(budget=cap)
    assert (period.spent, period.held) == (completion.result.cost, 0) and period.spent > 0

    await in_thread(remove_own_cap)(owner)
    await metered.complete(owner, ask(), source="api")
    assert upstream_calls(simulator) == 2
    await in_thread(assert_ledger_matches_simulator)(simulator)

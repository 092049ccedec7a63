from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from billing.models import Budget

pytestmark = pytest.mark.django_db


def _run(*args):
    out = StringIO()
    call_command("set_budget", *args, stdout=out)
    return out.getvalue()


def test_it_sets_a_users_budget(owner):
    output = _run("olivia", "25.50", "--period", "week", "--alert-percent", "90")
    budget = Budget.objects.get(user=owner)
    assert (budget.limit_usd, budget.period, budget.alert_percent) == (Decimal("25.50"), "week", 90)
    assert "weekly budget of user olivia" in output


def test_it_sets_a_groups_budget():
    Group.objects.create(name="research")
    _run("--group", "research", "100")
    assert Budget.objects.get(group__name="research").limit_usd == 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nobody", "5"), "No user named 'nobody'"),
        (("--group", "ghosts", "5"), "No group named 'ghosts'"),
        (("olivia", "lots"), "not an amount"),
        (("olivia", "-3"), "non-negative"),
        (("olivia",), "Expected"),
    ],
)
def test_it_explains_what_is_wrong(owner, args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)

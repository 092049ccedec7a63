"""Budgets name themselves in refusals and on pages, so the period must read as English."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Budget, Period


@pytest.mark.parametrize(
    ("period", "word"), [(Period.DAY, "daily"), (Period.WEEK, "weekly"), (Period.MONTH, "monthly")]
)
def test_label_reads_as_english(django_user_model, period, word, db):
    user = django_user_model.objects.create(username="sam")
    budget = Budget.objects.create(user=user, limit_usd=Decimal(5), period=period)
    assert budget.label == f"{word} budget of user sam"

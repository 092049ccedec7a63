"""The team page's budget form: a staff member sets, changes or removes one person's own budget, and the
admin's history (Django's LogEntry) records who did it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model

from billing.budgets import set_budget
from billing.models import Budget, Period
from orweb.money import format_usd


class PersonBudgetForm(forms.Form):
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        to_field_name="username",
        label="Person",
        error_messages={"invalid_choice": "No active person has that name."},
    )
    amount = forms.DecimalField(
        label="Limit (USD)",
        required=False,
        min_value=Decimal(0),
        max_digits=14,
        decimal_places=4,
        help_text="Leave empty to remove the person's own budget (group budgets still apply).",
    )
    period = forms.ChoiceField(choices=Period.choices, initial=Period.MONTH)

    def save(self, staff: Any) -> str:
        """Set or change the person's own budget, or with no amount remove it; what happened, for the page."""
        person, amount, period = (self.cleaned_data[name] for name in ("user", "amount", "period"))
        existing = list(Budget.objects.filter(user=person))
        if amount is None:
            if not existing:
                return f"{person} has no budget of their own."
            LogEntry.objects.log_actions(staff.pk, existing, DELETION, "Removed on the team page", single_object=True)
            Budget.objects.filter(user=person).delete()
            return f"Removed {person}'s own budget."
        budget = set_budget(user=person, amount=amount, period=period)
        limit = format_usd(budget.limit_usd)
        note = f"Set to {limit} a {period} on the team page"
        LogEntry.objects.log_actions(staff.pk, [budget], CHANGE if existing else ADDITION, note, single_object=True)
        return f"Set the {budget.label}: {limit}."

"""The team page's budget form: a staff member sets, changes or removes one person's budget."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model

from billing.models import Period


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

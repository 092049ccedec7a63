"""The team page's budget form: a staff member sets, changes or removes one person's own budget; the console's
audit log records who did it, before and after (through `billing.signals.budget_changed`). And the usage
page's form where any member sets a cap on their own spending (`billing.caps`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from billing.budgets import set_budget
from billing.caps import MAX_CAP, own_cap, refusal, set_own_cap
from billing.models import ADJECTIVE, Budget, Period
from billing.signals import budget_changed
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
        before = Budget.objects.filter(user=person).first()
        if amount is None:
            if before is None:
                return f"{person} has no budget of their own."
            Budget.objects.filter(user=person).delete()
            budget_changed.send(PersonBudgetForm, actor=staff, owner=person, before=before, after=None)
            return f"Removed {person}'s own budget."
        budget = set_budget(user=person, amount=amount, period=period)
        budget_changed.send(PersonBudgetForm, actor=staff, owner=person, before=before, after=budget)
        return f"Set the {budget.label}: {format_usd(budget.limit_usd)}."


class OwnCapForm(forms.Form):
    """A cap the signed-in person sets on their own spending: only ever theirs, only ever lower than the
    admins' budgets."""

    amount = forms.DecimalField(
        label="Cap (USD)",
        max_digits=14,
        decimal_places=4,
        error_messages={
            "required": "Enter the most you want to spend, in USD.",
            "invalid": "Enter an amount of USD, like 5 or 12.50.",
            "max_decimal_places": "Use at most 4 decimal places.",
            "max_digits": f"A cap can be at most {format_usd(MAX_CAP)}.",
            "max_whole_digits": f"A cap can be at most {format_usd(MAX_CAP)}.",
        },
    )
    period = forms.ChoiceField(
        label="Per",
        choices=Period.choices,
        initial=Period.MONTH,
        error_messages={"invalid_choice": "Pick day, week or month."},
    )

    def __init__(self, person: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.person = person

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        amount, period = data.get("amount"), data.get("period")
        if amount is not None and period:
            reason = refusal(self.person, amount, period)
            if reason:
                self.add_error("amount", reason)
        return data

    def save(self) -> str:
        """Set or change the cap; what happened, for the page."""
        before = own_cap(self.person)
        budget = set_own_cap(self.person, self.cleaned_data["amount"], self.cleaned_data["period"])
        verb = "Changed" if before else "Set"
        return f"{verb} your own {ADJECTIVE[budget.period]} cap: {format_usd(budget.limit_usd)}."

"""Forms of the people and groups pages: every field validated before anything changes."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator

from billing.models import Budget, Period, RateLimit
from catalog.models import CatalogModel
from console.groups import CAPABILITIES, providers
from orweb.money import plain_usd

# Larger numbers are typing mistakes, not budgets or limits: refused with a form error.
MAX_BUDGET = Decimal(1_000_000)
MAX_RPM = 1_000_000
MAX_TPM = 1_000_000_000
MAX_STREAMS = 10_000
MAX_PRICE_PER_MILLION = Decimal(10_000)


def _groups() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"), required=False, widget=forms.CheckboxSelectMultiple
    )


class PersonForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(required=False, help_text="Optional; the link is also e-mailed when mail is set up.")
    groups = _groups()
    is_staff = forms.BooleanField(required=False, label="Staff (manages everything here)")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("Someone already has that username.")
        return username


class PersonGroupsForm(forms.Form):
    groups = _groups()


class GroupForm(forms.Form):
    name = forms.CharField(max_length=150)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("A group needs a name.")
        if Group.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("A group with that name exists.")
        return name


class AddMembersForm(forms.Form):
    username = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True),
        to_field_name="username",
        label="Person",
        error_messages={"invalid_choice": "No active person has that username."},
    )


class AccessRulesForm(forms.Form):
    restrict = forms.BooleanField(required=False, label="Restrict this group's models")
    allow_by_rule = forms.BooleanField(required=False, label="Also allow every model that meets these rules")
    max_price_per_million = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_value=MAX_PRICE_PER_MILLION,
        max_digits=14,
        decimal_places=6,
        label="Price cap (USD per million tokens, prompt and completion)",
    )
    required_capabilities = forms.MultipleChoiceField(
        choices=CAPABILITIES, required=False, widget=forms.CheckboxSelectMultiple, label="Required capabilities"
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("allow_by_rule") and not data.get("restrict"):
            raise forms.ValidationError("Rules only apply to a restricted group: tick “Restrict” too.")
        return data


class CatalogIds(forms.MultipleChoiceField):
    """Model ids ticked from a search: checked against the whole catalog in `clean_models`, not a choice list."""

    def valid_value(self, value: str) -> bool:
        return True


class AddModelsForm(forms.Form):
    models = CatalogIds(required=False, widget=forms.CheckboxSelectMultiple)
    providers = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["providers"].choices = [(name, name) for name in providers()]

    def clean_models(self) -> list[str]:
        wanted = set(self.cleaned_data["models"])
        known = set(CatalogModel.objects.filter(id__in=wanted).values_list("id", flat=True))
        if unknown := wanted - known:
            raise forms.ValidationError(f"Not in the catalog: {', '.join(sorted(unknown))}.")
        return sorted(wanted)

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("models") and not data.get("providers"):
            raise forms.ValidationError("Pick at least one model or provider.")
        return data


class RemoveModelsForm(forms.Form):
    models = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)

    def __init__(self, allowed: list[str], *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["models"].choices = [(model_id, model_id) for model_id in allowed]


class RateLimitForm(forms.Form):
    requests_per_minute = forms.IntegerField(required=False, min_value=1, max_value=MAX_RPM, label="Requests / minute")
    tokens_per_minute = forms.IntegerField(required=False, min_value=1, max_value=MAX_TPM, label="Tokens / minute")
    concurrent_streams = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_STREAMS, label="Concurrent streams"
    )


def limit_initial(limit: RateLimit | None) -> dict[str, int | None]:
    """A RateLimitForm's initial values from a person's or group's row (none: all empty)."""
    names = ("requests_per_minute", "tokens_per_minute", "concurrent_streams")
    return {} if limit is None else {name: getattr(limit, name) for name in names}


def budget_initial(budget: Budget | None) -> dict[str, object]:
    """A BudgetForm's initial values from a budget (none: the defaults)."""
    if budget is None:
        return {}
    return {"amount": plain_usd(budget.limit_usd), "period": budget.period, "alert_percent": budget.alert_percent}


class BudgetForm(forms.Form):
    amount = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_value=MAX_BUDGET,
        max_digits=14,
        decimal_places=4,
        label="Limit (USD)",
        help_text="Empty removes the budget.",
    )
    period = forms.ChoiceField(choices=Period.choices, initial=Period.MONTH)
    alert_percent = forms.IntegerField(min_value=0, max_value=100, initial=80, label="Alert at (%)")


class NewBudgetForm(BudgetForm):
    """A budget for a person or a group (exactly one), from the budgets page."""

    person = forms.ModelChoiceField(
        queryset=get_user_model().objects.all(),
        to_field_name="username",
        required=False,
        error_messages={"invalid_choice": "Nobody has that username."},
    )
    group = forms.ModelChoiceField(
        queryset=Group.objects.all(),
        to_field_name="name",
        required=False,
        error_messages={"invalid_choice": "No group has that name."},
    )

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        if (data.get("person") is None) == (data.get("group") is None):
            raise forms.ValidationError("Give a person or a group, not both.")
        if data.get("amount") is None:
            self.add_error("amount", "A new budget needs a limit.")
        return data

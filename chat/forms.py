"""Forms of the chat pages. Model ids are checked against what this user may call, not just their shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from chat import surface, tools

MAX_FALLBACKS = 3


def tool_choices() -> list[tuple[str, str]]:
    return [(tool.name, tool.label) for tool in tools.TOOLS.values()]


class SettingsForm(forms.Form):
    """A conversation's (or preset's) model, system prompt, parameters and tools."""

    model = forms.CharField(max_length=200)
    fallback_models = forms.MultipleChoiceField(required=False)
    system_prompt = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea)
    temperature = forms.DecimalField(
        required=False, min_value=Decimal(0), max_value=Decimal(2), max_digits=3, decimal_places=2
    )
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=200_000)
    tools = forms.MultipleChoiceField(required=False)
    reasoning = forms.ChoiceField(choices=surface.REASONING_CHOICES, required=False)
    web_search = forms.BooleanField(required=False)
    pdf_engine = forms.ChoiceField(choices=surface.PDF_ENGINE_CHOICES, required=False)

    def __init__(self, *args: Any, allowed: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowed = allowed
        self.fields["fallback_models"].choices = [(m, m) for m in sorted(allowed)]
        self.fields["tools"].choices = tool_choices()

    def clean_model(self) -> str:
        model = self.cleaned_data["model"]
        if model not in self.allowed:
            raise forms.ValidationError("Pick a model from the list: that one isn't available to you.")
        return model

    def clean_pdf_engine(self) -> str:
        return self.cleaned_data["pdf_engine"] or surface.PDF_ENGINE_CHOICES[0][0]

    def clean_fallback_models(self) -> list[str]:
        chosen = [m for m in self.cleaned_data["fallback_models"] if m != self.data.get("model")]
        if len(chosen) > MAX_FALLBACKS:
            raise forms.ValidationError(f"At most {MAX_FALLBACKS} fallback models.")
        return chosen


class PresetForm(SettingsForm):
    name = forms.CharField(max_length=100)


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200)


class CompareForm(forms.Form):
    """One prompt for 2–4 different models."""

    prompt = forms.CharField(max_length=100_000, widget=forms.Textarea)
    models = forms.MultipleChoiceField()

    def __init__(self, *args: Any, allowed: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["models"].choices = [(m, m) for m in sorted(allowed)]

    def clean_models(self) -> list[str]:
        chosen = list(dict.fromkeys(self.cleaned_data["models"]))
        if not 2 <= len(chosen) <= 4:
            raise forms.ValidationError("Pick two to four different models.")
        return chosen

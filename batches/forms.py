"""The upload form of the batches page: a file, the defaults for lines that name no model or parameters, the
cross-job cache opt-in, economy mode (OpenRouter's Batch API, for a text-only default model), and a
webhook to call when the job ends. What is inside the file is checked by
`batches.formats` and `batches.jobs`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from batches.notices import BadWebhook, check_webhook_url

SUFFIXES = (".jsonl", ".csv")


class UploadForm(forms.Form):
    file = forms.FileField()
    model = forms.ChoiceField(required=False)
    temperature = forms.DecimalField(
        required=False, min_value=Decimal(0), max_value=Decimal(2), max_digits=3, decimal_places=2
    )
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=200_000)
    cache_across_jobs = forms.BooleanField(required=False)
    economy = forms.BooleanField(required=False, label="Economy mode")
    webhook_url = forms.URLField(required=False, max_length=500, assume_scheme="https")

    def __init__(self, *args: Any, allowed: list[str], economy_models: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "None: every line names its model")] + [(m, m) for m in allowed]
        self.economy_models = economy_models or set()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        model = cleaned.get("model")
        if cleaned.get("economy") and model not in self.economy_models:
            problem = (
                f"not for {model}: it takes or makes more than text, and OpenRouter's Batch API serves "
                "text-only models."
                if model
                else "choose the default model: an economy job sends every line to it."
            )
            self.add_error("economy", f"Not available, {problem}")
        return cleaned

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(SUFFIXES):
            raise forms.ValidationError("Upload a .jsonl or .csv file.")
        return upload

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data.get("webhook_url") or ""
        try:
            return check_webhook_url(url) if url else ""
        except BadWebhook as error:
            raise forms.ValidationError(str(error)) from error

    def default_params(self) -> dict[str, Any]:
        """The parameters chosen for lines that set none, as a chat body's fields (JSON-ready)."""
        params: dict[str, Any] = {}
        if self.cleaned_data.get("temperature") is not None:
            params["temperature"] = float(self.cleaned_data["temperature"])
        if self.cleaned_data.get("max_tokens") is not None:
            params["max_tokens"] = self.cleaned_data["max_tokens"]
        return params

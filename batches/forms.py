"""The upload form of the batches page: a file, the defaults for lines that name no model or parameters, and
the cross-job cache opt-in. What is inside the file is checked by `batches.formats` and `batches.jobs`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

SUFFIXES = (".jsonl", ".csv")


class UploadForm(forms.Form):
    file = forms.FileField()
    model = forms.ChoiceField(required=False)
    temperature = forms.DecimalField(
        required=False, min_value=Decimal(0), max_value=Decimal(2), max_digits=3, decimal_places=2
    )
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=200_000)
    cache_across_jobs = forms.BooleanField(required=False)

    def __init__(self, *args: Any, allowed: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "None: every line names its model")] + [(m, m) for m in allowed]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(SUFFIXES):
            raise forms.ValidationError("Upload a .jsonl or .csv file.")
        return upload

    def default_params(self) -> dict[str, Any]:
        """The parameters chosen for lines that set none, as a chat body's fields (JSON-ready)."""
        params: dict[str, Any] = {}
        if self.cleaned_data.get("temperature") is not None:
            params["temperature"] = float(self.cleaned_data["temperature"])
        if self.cleaned_data.get("max_tokens") is not None:
            params["max_tokens"] = self.cleaned_data["max_tokens"]
        return params

"""The console's date range and filters, read from the query string of every spend page and export.

One form validates them all: a preset or a custom range (inclusive UTC days, as the rollup's), and filters
naming a person, group, model, source or API key that must exist. Bad input is a form error on the page,
never a silent empty result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from billing.budgets import today
from billing.models import DailyModelUsage, Source
from catalog.models import CatalogModel
from gateway.models import ApiKey

MAX_DAYS = 731  # two years: the rollup holds that many days cheaply, longer is a typo
EARLIEST = dt.date(2000, 1, 1)
PRESETS = [
    ("today", "Today"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("month", "This month"),
    ("last_month", "Last month"),
    ("custom", "Custom"),
]
STACKS = [("model", "Model"), ("group", "Group"), ("source", "Source")]


def preset_range(preset: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """The inclusive first and last day of a preset, seen from `day`."""
    if preset == "today":
        return day, day
    if preset == "7d":
        return day - dt.timedelta(days=6), day
    if preset == "month":
        return day.replace(day=1), day
    if preset == "last_month":
        last = day.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1), last
    return day - dt.timedelta(days=29), day


@dataclass(frozen=True)
class Selection:
    """A validated range and filters: what every query and link of the console is built from."""

    start: dt.date
    end: dt.date
    preset: str = "30d"
    person: Any = None
    group: Group | None = None
    model: str = ""
    source: str = ""
    key: ApiKey | None = None
    stack: str = "model"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Selection:
        """The range of equal length just before this one, same filters."""
        return replace(self, start=self.start - dt.timedelta(days=self.days), end=self.start - dt.timedelta(days=1))

    def params(self, **changes: Any) -> dict[str, str]:
        """Query parameters reproducing this selection, with `changes` (a person, model...) applied."""
        values = {
            "preset": self.preset,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "person": self.person.get_username() if self.person else "",
            "group": self.group.name if self.group else "",
            "model": self.model,
            "source": self.source,
            "key": str(self.key.pk) if self.key else "",
            "stack": self.stack,
        }
        values.update({name: str(value) for name, value in changes.items()})
        if values["preset"] != "custom":
            values.pop("start")
            values.pop("end")
        return {name: value for name, value in values.items() if value}

    def query(self, **changes: Any) -> str:
        """`params` as a query string (starting with "?")."""
        return "?" + urlencode(self.params(**changes))

    def day_query(self, day: dt.date) -> str:
        """The same filters narrowed to one day."""
        return self.query(preset="custom", start=day.isoformat(), end=day.isoformat())

    @property
    def active_filters(self) -> list[tuple[str, str]]:
        shown = {
            "person": self.person.get_username() if self.person else "",
            "group": self.group.name if self.group else "",
            "model": self.model,
            "source": self.source,
            "key": str(self.key) if self.key else "",
        }
        return [(name, value) for name, value in shown.items() if value]


class SelectionForm(forms.Form):
    """The query string of a console page. `selection()` after `is_valid()`."""

    preset = forms.ChoiceField(choices=PRESETS, required=False)
    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    person = forms.CharField(required=False, max_length=150)
    group = forms.CharField(required=False, max_length=150)
    model = forms.CharField(required=False, max_length=200)
    source = forms.ChoiceField(choices=[("", "Any"), *Source.choices], required=False)
    key = forms.IntegerField(required=False, min_value=1)
    stack = forms.ChoiceField(choices=STACKS, required=False)

    def __init__(self, data: Any, *, default_preset: str = "30d") -> None:
        super().__init__(data)
        self.default_preset = default_preset

    def clean_person(self) -> Any:
        name = self.cleaned_data["person"].strip()
        if not name:
            return None
        users = get_user_model()
        try:
            return users.objects.get(**{users.USERNAME_FIELD: name})
        except users.DoesNotExist:
            raise forms.ValidationError(f"Nobody is called “{name}”.") from None

    def clean_group(self) -> Group | None:
        name = self.cleaned_data["group"].strip()
        if not name:
            return None
        try:
            return Group.objects.get(name=name)
        except Group.DoesNotExist:
            raise forms.ValidationError(f"There is no group “{name}”.") from None

    def clean_model(self) -> str:
        model = self.cleaned_data["model"].strip()
        known = CatalogModel.objects.filter(pk=model).exists() or DailyModelUsage.objects.filter(model=model).exists()
        if model and not known:
            raise forms.ValidationError(f"No model “{model}” is in the catalog or has been used.")
        return model

    def clean_key(self) -> ApiKey | None:
        key_id = self.cleaned_data["key"]
        if key_id is None:
            return None
        key = ApiKey.objects.filter(pk=key_id).first()
        if key is None:
            raise forms.ValidationError(f"There is no API key #{key_id}.")
        return key

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        preset = data.get("preset") or ("custom" if data.get("start") or data.get("end") else self.default_preset)
        data["preset"] = preset
        if preset != "custom":
            data["start"], data["end"] = preset_range(preset, today())
            return data
        start, end = data.get("start"), data.get("end")
        if self.errors.get("start") or self.errors.get("end"):
            return data
        if start is None or end is None:
            raise forms.ValidationError("A custom range needs both a first and a last day.")
        if start > end:
            raise forms.ValidationError(f"The range is reversed: {start} comes after {end}.")
        if start < EARLIEST or end > today() + dt.timedelta(days=1):
            raise forms.ValidationError(f"Pick days between {EARLIEST} and today.")
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"Pick at most {MAX_DAYS} days; that range has {(end - start).days + 1}.")
        return data

    def selection(self) -> Selection:
        data = self.cleaned_data
        return Selection(
            start=data["start"],
            end=data["end"],
            preset=data["preset"],
            person=data.get("person"),
            group=data.get("group"),
            model=data.get("model") or "",
            source=data.get("source") or "",
            key=data.get("key"),
            stack=data.get("stack") or "model",
        )

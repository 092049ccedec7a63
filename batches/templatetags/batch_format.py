"""How the batch pages name a job's status: "in_progress" reads "In progress"."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def status_label(status: str) -> str:
    return str(status).replace("_", " ").capitalize()

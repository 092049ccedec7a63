"""What a member sees of admins reading their conversations: every opening of one of their transcripts
(console.transcripts), on their own usage page."""

from __future__ import annotations

from typing import Any

from django import template

from console.transcripts import openings_of

register = template.Library()


@register.inclusion_tag("console/_transcript_openings.html")
def transcript_openings(user: Any) -> dict[str, Any]:
    return {"openings": openings_of(user) if getattr(user, "is_authenticated", False) else []}

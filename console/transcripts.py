"""Opening a member's transcript: the one place an admin may read what someone wrote, for a reported abuse.

It is an explicit act with a stated reason, never a page to browse: each opening is a POST that writes an
audit row (who, when, whose conversation, why) before any content is read, and the person sees on their
usage page that it happened. Everything else in the console shows spend, never content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string

from chat.models import Conversation, Message
from console.audit import record
from console.models import AuditEvent

ACTION = "transcript.open"


class TranscriptForm(forms.Form):
    """Which of the person's conversations, and why (required)."""

    conversation = forms.IntegerField(min_value=1, error_messages={"required": "Pick a conversation."})
    reason = forms.CharField(
        max_length=500,
        strip=True,
        error_messages={"required": "Say why you need to read it: the person will see this reason."},
    )

    def __init__(self, person: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.person = person

    def clean_conversation(self) -> Conversation:
        found = Conversation.objects.filter(pk=self.cleaned_data["conversation"], user=self.person).first()
        if found is None:
            raise forms.ValidationError(f"{self.person.get_username()} has no such conversation.")
        return found


def choices(person: Any) -> list[dict[str, Any]]:
    """The person's conversations as an admin may pick them: number, dates and size, never the title."""
    return list(
        Conversation.objects.filter(user=person)
        .order_by("-updated", "-pk")
        .values("pk", "created", "updated", "model")[:200]
    )


@dataclass(frozen=True)
class Transcript:
    conversation: Conversation
    messages: list[Message]
    event: AuditEvent


def open_transcript(actor: Any, form: TranscriptForm) -> Transcript:
    """Record the opening, then read the conversation (in that order, in one transaction)."""
    conversation = form.cleaned_data["conversation"]
    reason = form.cleaned_data["reason"]
    with transaction.atomic():
        event = record(
            actor,
            ACTION,
            "person",
            form.person,
            None,
            {"conversation": conversation.pk, "reason": reason},
            label=form.person.get_username(),
        )
        messages = list(
            Message.objects.filter(conversation=conversation)
            .order_by("created", "pk")
            .only("role", "content", "created", "served_model", "status")
        )
    return Transcript(conversation=conversation, messages=messages, event=event)


def openings_of(person: Any) -> list[AuditEvent]:
    """Every time an admin opened one of the person's transcripts, newest first."""
    return list(AuditEvent.objects.filter(action=ACTION, target_id=f"person:{person.pk}").order_by("-at", "-pk"))


def openings_section(request: HttpRequest, **_: Any) -> str:
    """The person's usage page section listing every opening of their transcripts (billing asks for it by
    the `usage_page_sections` signal: it may not import the console)."""
    openings = openings_of(request.user)
    return render_to_string("console/_transcript_openings.html", {"openings": openings}) if openings else ""

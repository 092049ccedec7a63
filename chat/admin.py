"""Admin views of chat data: metadata and cost only, read-only. Admins see spend, never content: no message
text, tool calls or results, errors that may quote them, titles (written from the conversation), system
prompts, attachment names or bytes, and no search over any of them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from chat.models import Attachment, Conversation, Message, Preset


class MetadataOnlyAdmin(admin.ModelAdmin):
    """Rows are the members' own: viewed here, never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # A field str() would name the row by (a title, a file name) on the change and history pages.
    named_by = ""

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """The row with `named_by` blanked in memory, so it is named by its id; nothing here can save it."""
        row = super().get_object(request, object_id, from_field)
        if row is not None and self.named_by:
            setattr(row, self.named_by, "")
        return row


@admin.display(description="conversation")
def conversation_ref(row: Any) -> str:
    """A conversation by id: its str() is its title, which is content."""
    return f"conversation {row.conversation_id}" if row.conversation_id else "-"


@admin.register(Conversation)
class ConversationAdmin(MetadataOnlyAdmin):
    named_by = "title"
    list_display = ("id", "user", "model", "total_cost", "created", "updated")
    list_display_links = ("id",)
    list_filter = ("model",)
    search_fields = ("user__username",)
    fields = ("id", "user", "model", "temperature", "max_tokens", "total_cost", "created", "updated")
    readonly_fields = fields


@admin.register(Message)
class MessageAdmin(MetadataOnlyAdmin):
    list_display = ("id", conversation_ref, "role", "status", "served_model", "cost", "created")
    list_filter = ("role", "status")
    fields = (
        "id",
        conversation_ref,
        "role",
        "status",
        "requested_model",
        "served_model",
        "provider",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "ttft_ms",
        "tokens_per_second",
        "created",
    )
    readonly_fields = fields


@admin.register(Attachment)
class AttachmentAdmin(MetadataOnlyAdmin):
    named_by = "name"
    list_display = ("id", "user", conversation_ref, "mime", "size", "created")
    fields = ("id", "user", conversation_ref, "mime", "size", "created")
    readonly_fields = fields


@admin.register(Preset)
class PresetAdmin(MetadataOnlyAdmin):
    list_display = ("id", "user", "model")
    fields = ("id", "user", "model", "temperature", "max_tokens", "created")
    readonly_fields = fields

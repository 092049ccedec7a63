"""Admin views of chat data: read-mostly, for support and audits (message text is the users' own)."""

from __future__ import annotations

from django.contrib import admin

from chat.models import Attachment, Conversation, Message, Preset


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "title", "model", "total_cost", "updated")
    list_filter = ("model",)
    search_fields = ("title", "user__username")
    raw_id_fields = ("user", "current_leaf")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "status", "served_model", "cost", "created")
    list_filter = ("role", "status")
    raw_id_fields = ("conversation", "parent", "attachments")


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "name", "mime", "size", "created")
    exclude = ("data",)
    raw_id_fields = ("user", "conversation")


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "name", "model")
    raw_id_fields = ("user",)

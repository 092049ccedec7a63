"""Conversations as trees of messages, their image attachments and per-user presets.

A conversation's messages form a tree (regenerate = a new assistant sibling, edit = a new user sibling);
the branch shown is the path from the root to `current_leaf`.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import JSONField, Value

USD = {"max_digits": 20, "decimal_places": 10}


class Conversation(models.Model):
    """One chat: its model and parameters, the enabled tools, and the tip of the branch being shown."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200)
    fallback_models = models.JSONField(default=list, blank=True)
    system_prompt = models.TextField(blank=True)
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True)
    # "" leaves reasoning to the model's default; "off" turns it off; else an effort (chat.surface).
    reasoning = models.CharField(max_length=10, blank=True, default="", db_default="")
    web_search = models.BooleanField(default=False, db_default=False)
    # How attached PDFs are read: OpenRouter's free text engine unless the user asks for OCR (a fee per page).
    pdf_engine = models.CharField(max_length=20, default="pdf-text", db_default="pdf-text")
    compare_group = models.UUIDField(null=True, blank=True, db_index=True)
    current_leaf = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    total_cost = models.DecimalField(**USD, default=Decimal(0))
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]
        indexes = [models.Index(fields=["user", "-updated"])]

    def __str__(self) -> str:
        return self.title or f"conversation {self.pk}"


class Message(models.Model):
    """One turn. `content` is raw model text; `seq` is the last stream delta included in it."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"

    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        ERROR = "error"
        INCOMPLETE = "incomplete"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    requested_model = models.CharField(max_length=200, blank=True)
    served_model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    skipped = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**USD, default=Decimal(0))
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_second = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    seq = models.PositiveIntegerField(default=0)
    tool_calls = models.JSONField(default=list, blank=True)
    # The fields below have database defaults too: raw inserts (and rows written before them) name only the
    # columns they know.
    # The model's thinking, shown folded above the answer, and OpenRouter's `reasoning_details`, sent back
    # unmodified with this turn on the next call (OpenRouter requires it for tool loops and multi-turn).
    reasoning = models.TextField(blank=True, default="", db_default="")
    reasoning_details = models.JSONField(default=list, blank=True, db_default=Value([], JSONField()))
    reasoning_tokens = models.PositiveIntegerField(default=0, db_default=0)
    cached_tokens = models.PositiveIntegerField(default=0, db_default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0, db_default=0)
    # What reading from the prompt cache saved against the full prompt price (negative: writes cost more).
    cache_saved = models.DecimalField(**USD, default=Decimal(0), db_default=Decimal(0))
    # `url_citation`s (web search) and parsed `file` annotations, as OpenRouter sent them.
    annotations = models.JSONField(default=list, blank=True, db_default=Value([], JSONField()))
    # Why `orweb/auto*` chose the model that answered.
    auto_reason = models.CharField(max_length=300, blank=True, default="", db_default="")
    attachments = models.ManyToManyField("Attachment", blank=True, related_name="messages")
    created = models.DateTimeField(auto_now_add=True)
    # When a runner last saved or touched this reply while streaming: with its lease, how chat.sweep tells
    # a live reply from one whose process died (null until the first checkpoint: `created` stands in).
    checkpointed = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [
            models.Index(fields=["conversation", "parent"]),
            models.Index(fields=["status"], condition=models.Q(status="streaming"), name="chat_message_streaming"),
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"

    @property
    def is_live(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.STREAMING)


class Attachment(models.Model):
    """An uploaded image, PDF or text file, or an image a model produced, stored in the database (small,
    and checked by content: see chat.uploads)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_attachments")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    name = models.CharField(max_length=200, blank=True)
    mime = models.CharField(max_length=50)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    data = models.BinaryField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or f"attachment {self.pk}"


class Preset(models.Model):
    """A user's saved starting point for new chats."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_presets")
    name = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    fallback_models = models.JSONField(default=list, blank=True, db_default=Value([], JSONField()))
    system_prompt = models.TextField(blank=True)
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True)
    reasoning = models.CharField(max_length=10, blank=True, default="", db_default="")
    web_search = models.BooleanField(default=False, db_default=False)
    pdf_engine = models.CharField(max_length=20, default="pdf-text", db_default="pdf-text")
    created = models.DateTimeField(auto_now_add=True)

    # What a preset keeps: every setting of the new-chat form (chat.forms.SettingsForm).
    SETTINGS = (
        "model",
        "fallback_models",
        "system_prompt",
        "temperature",
        "max_tokens",
        "tools",
        "reasoning",
        "web_search",
        "pdf_engine",
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="one_preset_name_per_user")]

    def __str__(self) -> str:
        return self.name

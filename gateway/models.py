"""Personal API keys and the per-group model policies every call is checked against."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class ApiKey(models.Model):
    """A user's personal key for /v1. Only a SHA-256 of the secret is stored; the prefix is shown."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    hashed_key = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class GroupPolicy(models.Model):
    """Which models a group's members may call. A user in several groups gets the union.

    A model is allowed when it is in `allowed_models`, or, when `allow_by_rule` is set, when it passes
    every rule given (price cap per million tokens, required capabilities such as "tools" or "image").
    `allow_web_search` lets members search the web (a fee per search); a user may when any group allows it.
    """

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="model_policy")
    allowed_models = models.JSONField(default=list, blank=True)
    allow_by_rule = models.BooleanField(default=False)
    max_price_per_million = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    required_capabilities = models.JSONField(default=list, blank=True)
    allow_web_search = models.BooleanField(
        default=True, help_text="Members may use web search (OpenRouter's server tool, billed per search)."
    )

    class Meta:
        verbose_name_plural = "group policies"

    def __str__(self) -> str:
        return f"policy for {self.group}"

    @property
    def price_cap_per_token(self) -> Decimal | None:
        if self.max_price_per_million is None:
            return None
        return self.max_price_per_million / Decimal(1_000_000)

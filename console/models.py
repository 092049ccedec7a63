"""The audit log: one row per admin change, append-only.

Rows name their actor and target by id and a label copied at the time, not by foreign key: the log must
outlive the people and groups it mentions, and a foreign key's ON DELETE would have to update or delete
rows that a database trigger (migration 0001) makes immutable.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


class AuditEvent(models.Model):
    """Who changed what, when, from which page, with the target's state before and after."""

    class Via(models.TextChoices):
        CONSOLE = "console"
        DJANGO_ADMIN = "admin", "Django admin"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=40, db_index=True)
    target_type = models.CharField(max_length=20, db_index=True)
    target_id = models.CharField(max_length=200)
    target_label = models.CharField(max_length=300)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    via = models.CharField(max_length=10, choices=Via.choices, default=Via.CONSOLE)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["target_type", "target_id", "-at"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} {self.target_label}"

    @property
    def before_items(self) -> list[tuple[str, str, bool]] | None:
        return _shown(self.before, self.after)

    @property
    def after_items(self) -> list[tuple[str, str, bool]] | None:
        return _shown(self.after, self.before)


def _shown(state: dict[str, Any] | None, other: dict[str, Any] | None) -> list[tuple[str, str, bool]] | None:
    """A state as (field, text, changed) for people: lists joined, booleans as yes/no, nothing as "none";
    `changed` when the other side of the change differs."""
    if state is None:
        return None
    other = other or {}
    return [(key, _text(value), other.get(key, value) != value or not other) for key, value in state.items()]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


class SpendAnomaly(models.Model):
    """A person's or an API key's day that cost more than N times its trailing 14-day median (console.anomalies),
    flagged once per subject and day for the admins."""

    class Kind(models.TextChoices):
        PERSON = "person"
        KEY = "key", "API key"

    kind = models.CharField(max_length=6, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    api_key_id = models.BigIntegerField(null=True, blank=True)
    day = models.DateField()
    cost = models.DecimalField(max_digits=20, decimal_places=10)
    median = models.DecimalField(max_digits=20, decimal_places=10)
    factor = models.DecimalField(max_digits=6, decimal_places=2)
    flagged_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "user", "day"], condition=Q(kind="person"), name="one_person_anomaly"
            ),
            models.UniqueConstraint(
                fields=["kind", "api_key_id", "day"], condition=Q(kind="key"), name="one_key_anomaly"
            ),
        ]


class AnomalySetting(models.Model):
    """The N of spend anomalies as staff set it on the anomalies page: one row at most. Without it, N is
    ORWEB_ANOMALY_FACTOR (console.anomalies.current_factor)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    factor = models.DecimalField(max_digits=6, decimal_places=2)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="one_anomaly_setting")]

    def __str__(self) -> str:
        return "spend anomaly factor"

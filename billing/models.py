"""Money: budgets and their holds, the ledger (one row per generation) and the daily rollup.

Every amount is a Decimal of USD. Invariant kept by billing.holds under row locks:
for every budget period, spent + held <= limit.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q

USD = {"max_digits": 20, "decimal_places": 10}


class Period(models.TextChoices):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


ADJECTIVE = {Period.DAY: "daily", Period.WEEK: "weekly", Period.MONTH: "monthly"}


def budget_label(period: str, kind: str, owner: str) -> str:
    """How pages and messages name a budget: kind "user" or "group" (the admins'), or "own" (a person's own
    cap)."""
    if kind == "own":
        return f"personal {ADJECTIVE[period]} cap of user {owner}"
    return f"{ADJECTIVE[period]} budget of {kind} {owner}"


class Budget(models.Model):
    """A spending cap for one user or one group, renewed every period."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="budget"
    )
    group = models.OneToOneField(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="budget")
    # A person's own cap, set by themselves below what the admins allow (billing.caps): a budget like the
    # others at hold time, kept apart from `user` so the admins' pages and forms never mistake it for theirs.
    person = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="own_cap"
    )
    limit_usd = models.DecimalField(max_digits=14, decimal_places=4)
    period = models.CharField(max_length=5, choices=Period.choices, default=Period.MONTH)
    alert_percent = models.PositiveSmallIntegerField(default=80)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(user__isnull=False, group__isnull=True, person__isnull=True)
                    | Q(user__isnull=True, group__isnull=False, person__isnull=True)
                    | Q(user__isnull=True, group__isnull=True, person__isnull=False)
                ),
                name="budget_has_one_owner",
            ),
            models.CheckConstraint(condition=Q(limit_usd__gte=0), name="budget_limit_not_negative"),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        if self.person_id:
            return budget_label(self.period, "own", str(self.person))
        if self.user_id:
            return budget_label(self.period, "user", str(self.user))
        return budget_label(self.period, "group", str(self.group))

    @property
    def is_own_cap(self) -> bool:
        return self.person_id is not None


class BudgetPeriod(models.Model):
    """Running totals of one budget for one period; the row locked while holding and settling."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="periods")
    start = models.DateField()
    spent = models.DecimalField(**USD, default=Decimal(0))
    held = models.DecimalField(**USD, default=Decimal(0))
    alerted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["budget", "start"], name="one_period_per_budget_start"),
            models.CheckConstraint(condition=Q(held__gte=0), name="held_not_negative"),
        ]


class Hold(models.Model):
    """Worst-case cost reserved for one call in flight, against every budget that applies."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="holds")
    amount = models.DecimalField(**USD)
    periods = models.ManyToManyField(BudgetPeriod, related_name="holds", blank=True)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["released_at", "expires_at"])]


class Source(models.TextChoices):
    CHAT = "chat"
    API = "api"
    BATCH = "batch"
    SYSTEM = "system"


class LedgerEntry(models.Model):
    """One upstream call's outcome. Unique on the generation id: a generation is charged once."""

    class Status(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        CANCELLED = "cancelled"
        INCOMPLETE = "incomplete"

    class CostSource(models.TextChoices):
        REPORTED = "reported"
        ESTIMATED = "estimated"
        RECONCILED = "reconciled"
        NONE = "none"

    call_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    generation_id = models.CharField(max_length=120, unique=True, null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries")
    source = models.CharField(max_length=10, choices=Source.choices)
    # The gateway API key the call came in with, by id only: the ledger is append-only history that must
    # outlive the keys it names, and billing sits below gateway.
    api_key_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    requested_model = models.CharField(max_length=200)
    served_model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**USD, default=Decimal(0))
    # OpenRouter's `usage.cost_details` and server-tool counts as reported (strings of USD), for display.
    cost_details = models.JSONField(default=dict, blank=True)
    cost_source = models.CharField(max_length=10, choices=CostSource.choices)
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.CharField(max_length=300, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # The hold this call settled: its periods are the budget periods a later reconciliation corrects.
    hold = models.ForeignKey(Hold, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["user", "created"]),
            models.Index(fields=["cost_source"], condition=Q(cost_source="estimated"), name="ledger_estimated"),
            models.Index(fields=["api_key_id", "created"], name="ledger_key_created"),
        ]
        constraints = [models.CheckConstraint(condition=Q(cost__gte=0), name="ledger_cost_not_negative")]


class DailyUsage(models.Model):
    """The ledger rolled up per day, user, served model and source, for fast spend pages."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage")
    model = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(**USD, default=Decimal(0))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "user", "model", "source"], name="one_rollup_row"),
        ]
        indexes = [
            models.Index(fields=["user", "day"], name="rollup_user_day"),
            models.Index(fields=["model", "day"], name="rollup_model_day"),
        ]


class RollupCounts(models.Model):
    """What a rollup adds up per row (`billing.ledger` writes every rollup in the settle statement). DailyUsage
    spells its own out: its counts of requests are 32-bit, from before the others."""

    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(**USD, default=Decimal(0))

    class Meta:
        abstract = True


class DailyModelUsage(RollupCounts):
    """The ledger rolled up per day, served model and source for the whole team: a few rows a day, so
    team-wide pages stay fast however many people the ledger holds."""

    day = models.DateField()
    model = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "model", "source"], name="one_model_rollup_row")]


class DailyPersonUsage(RollupCounts):
    """The ledger rolled up per day and person, for per-person totals over long ranges."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "user"], name="one_person_rollup_row")]
        indexes = [models.Index(fields=["user", "day"], name="person_rollup_user_day")]


class DailyPersonSourceUsage(RollupCounts):
    """The ledger rolled up per day, person and source: people and groups filtered or stacked by source
    without the model's grain. Its own table, not a column of the person rollup, which it would make three
    to four times longer for every page that doesn't ask for the source."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "user", "source"], name="one_person_source_rollup_row")]
        indexes = [models.Index(fields=["user", "day"], name="person_source_user_day")]


class DailyKeyUsage(RollupCounts):
    """The calls made with an API key rolled up per day, key, served model and source (with the key's owner,
    for filters by person or group): the console's views of one key read these rows, never the ledger."""

    day = models.DateField()
    # By id only, as in the ledger: the rollup outlives the keys it names, and billing sits below gateway.
    api_key_id = models.BigIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "api_key_id", "user", "model", "source"], name="one_key_rollup_row")
        ]
        indexes = [models.Index(fields=["api_key_id", "day"], name="key_rollup_key_day")]


class RateLimit(models.Model):
    """Per-minute request and token limits and concurrent streams, for a user or a group.

    A user's own row wins over their groups'; among groups the most generous value applies.
    An empty field means "no limit from this row".
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="rate_limit"
    )
    group = models.OneToOneField(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="rate_limit")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    concurrent_streams = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False)),
                name="rate_limit_has_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"rate limits of person {self.user}" if self.user_id else f"rate limits of group {self.group}"


class BooksCheck(models.Model):
    """One UTC day's ledger total beside what OpenRouter says the server key used that day (`usage_daily`
    of GET /key), as of the day's latest check; billing.books writes it."""

    day = models.DateField(unique=True)
    ledger = models.DecimalField(**USD)
    openrouter = models.DecimalField(**USD)
    checked_at = models.DateTimeField()
    # How many checks in a row, up to the latest, found the two further apart than the threshold; 0 = in step.
    over_checks = models.PositiveIntegerField(default=0)
    alerted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"books of {self.day}"

    @property
    def drift(self) -> Decimal:
        """Positive when the ledger holds more than OpenRouter billed, negative when it misses some."""
        return self.ledger - self.openrouter

    @property
    def over(self) -> bool:
        return self.over_checks > 0


class BudgetAlert(models.Model):
    """A budget period past one of its thresholds (its alert percentage, then 100%): written once per
    threshold per period, it is the banner each person concerned sees until they dismiss it and the one
    signed webhook that tells the team's own systems."""

    period = models.ForeignKey(BudgetPeriod, on_delete=models.CASCADE, related_name="threshold_alerts")
    threshold = models.PositiveSmallIntegerField()
    spent = models.DecimalField(**USD)
    limit_usd = models.DecimalField(max_digits=14, decimal_places=4)
    created = models.DateTimeField(auto_now_add=True)
    webhook_tries = models.PositiveIntegerField(default=0)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)
    webhook_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "threshold"], name="one_alert_per_threshold")]


class AlertBanner(models.Model):
    """One person's copy of a budget alert, shown on their pages until they dismiss it."""

    alert = models.ForeignKey(BudgetAlert, on_delete=models.CASCADE, related_name="banners")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_banners")
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["alert", "user"], name="one_banner_per_person")]
        indexes = [models.Index(fields=["user", "dismissed_at"], name="banner_user_open")]

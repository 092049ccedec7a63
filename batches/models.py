"""Batch jobs: an uploaded file of chat requests, the job that runs it, and one row per line of the file.

A line is the unit of work and of money: it is claimed by one worker at a time (`claimed_until`, a lease
that lapses when the worker dies) and settled once, by a write conditional on that claim
(`batches.runner`). Its `response` and `error` are the OpenAI batch output shapes, so results are
generated from the lines on download, in input order, at any time.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models

USD = {"max_digits": 20, "decimal_places": 10}


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def new_job_id() -> str:
    return "batch_" + secrets.token_hex(12)


class BatchFile(models.Model):
    """An uploaded input file (stored on disk under ORWEB_BATCH_DIR), or a generated output / error file
    (nothing stored: its content is made from the job's lines when downloaded)."""

    class Purpose(models.TextChoices):
        BATCH = "batch"
        BATCH_OUTPUT = "batch_output"
        BATCH_ERROR = "batch_error"

    id = models.CharField(primary_key=True, max_length=40, default=new_file_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batch_files")

    class Format(models.TextChoices):
        JSONL = "jsonl"
        CSV = "csv"

    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.BATCH)
    format = models.CharField(max_length=5, choices=Format.choices, default=Format.JSONL)
    filename = models.CharField(max_length=255)
    bytes = models.BigIntegerField(default=0)
    path = models.CharField(max_length=500, blank=True)
    lines = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    deleted = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["user", "-created"])]

    def __str__(self) -> str:
        return self.id


class BatchJob(models.Model):
    """One run of an input file: its status, defaults, counts, money and timing."""

    class Status(models.TextChoices):
        VALIDATING = "validating"
        READY = "ready"
        IN_PROGRESS = "in_progress"
        PAUSED = "paused"
        FINALIZING = "finalizing"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    class Origin(models.TextChoices):
        WEB = "web"
        API = "api"

    id = models.CharField(primary_key=True, max_length=40, default=new_job_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batch_jobs")
    input_file = models.ForeignKey(BatchFile, on_delete=models.PROTECT, related_name="jobs")
    endpoint = models.CharField(max_length=100, default="/v1/chat/completions")
    completion_window = models.CharField(max_length=10, default="24h")
    metadata = models.JSONField(default=dict, blank=True)
    origin = models.CharField(max_length=5, choices=Origin.choices, default=Origin.WEB)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.VALIDATING)
    reason = models.TextField(blank=True)
    default_model = models.CharField(max_length=200, blank=True)
    default_params = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    valid = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**USD, default=Decimal(0))
    estimate_low = models.DecimalField(**USD, default=Decimal(0))
    estimate_high = models.DecimalField(**USD, default=Decimal(0))
    prompt_tokens = models.BigIntegerField(default=0)
    concurrency = models.PositiveIntegerField(default=8)
    cache_across_jobs = models.BooleanField(default=False)
    output_file = models.ForeignKey(BatchFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error_file = models.ForeignKey(BatchFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Economy mode's step working on the job, renewed while it lives; a lapsed lease is picked up again.
    # (Line by line, a job's runs hold `BatchRun` rows instead.)
    lease = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The job's end told to its owner (`batches.notices`): an e-mail once, and a signed POST to the job's
    # webhook, tried up to ORWEB_BATCH_WEBHOOK_TRIES times until it answers 2xx.
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_tries = models.PositiveIntegerField(default=0)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)
    webhook_error = models.CharField(max_length=300, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # Economy mode (`batches.economy`): the lines go to OpenRouter's Batch API as one upstream batch.
    # `remote_state` is written "submitting" before the POST and "submitted" with `remote_id` right after
    # it, so a crash in between is known and never submits (and pays for) the lines twice.
    economy = models.BooleanField(default=False)
    remote_state = models.CharField(max_length=12, blank=True)
    remote_id = models.CharField(max_length=100, blank=True)
    remote_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["user", "-created"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.id

    @property
    def is_running(self) -> bool:
        return self.status in (self.Status.IN_PROGRESS, self.Status.FINALIZING, self.Status.CANCELLING)

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.FAILED, self.Status.CANCELLED, self.Status.EXPIRED)


class BatchRun(models.Model):
    """One run working on a job's lines (`batches.runner`), in one of the job's run slots: a job is worked by
    at most ORWEB_BATCH_RUNS_PER_JOB runs at once, each renewing `until` while it lives; a slot whose run
    died lapses and is taken again."""

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="runs")
    slot = models.PositiveSmallIntegerField()
    token = models.CharField(max_length=32)
    until = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "slot"], name="batch_run_unique_slot")]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.slot}"


class BatchLine(models.Model):
    """One line of the input file: the request it makes (defaults applied), and how it ended."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        INVALID = "invalid"
        CANCELLED = "cancelled"

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="lines")
    number = models.PositiveIntegerField()
    custom_id = models.CharField(max_length=200, blank=True)
    request = models.JSONField(null=True, blank=True)
    problem = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True)  # the worker run holding it: settles only if it still does
    tries = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    generation_id = models.CharField(max_length=200, blank=True)
    cost = models.DecimalField(**USD, default=Decimal(0))
    cached = models.BooleanField(default=False)
    cache_key = models.CharField(max_length=64, blank=True)
    hold_id = models.UUIDField(null=True, blank=True)  # economy: this line's budget hold until it settles
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="batch_line_unique_number")]
        indexes = [
            models.Index(fields=["job", "status"]),
            models.Index(fields=["cache_key"], name="batch_line_cache", condition=~models.Q(cache_key="")),
            # What a claim reads, lowest numbers first, without stepping over the lines already finished.
            models.Index(
                fields=["job", "number"],
                name="batch_line_open",
                condition=models.Q(status__in=("pending", "running")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.number}"

"""The model catalog: what OpenRouter offers, at what price, and how prices changed over time."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

PRICE = {"max_digits": 20, "decimal_places": 12}
MILLION = Decimal(1_000_000)


class CatalogModelQuerySet(models.QuerySet):
    def callable(self) -> CatalogModelQuerySet:
        """Models a request may be sent to: still offered upstream, and with a known price (a model
        without one can't be held against a budget)."""
        return self.filter(is_available=True, prompt_price__isnull=False, completion_price__isnull=False)


class CatalogModel(models.Model):
    """One upstream model. Never deleted: ledger rows point at models that may have left OpenRouter."""

    id = models.CharField(primary_key=True, max_length=200)
    canonical_slug = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    max_completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    input_modalities = models.JSONField(default=list)
    output_modalities = models.JSONField(default=list)
    supported_parameters = models.JSONField(default=list)
    tokenizer = models.CharField(max_length=100, blank=True)
    # USD per token; NULL means unknown (unparseable, negative or "-1" upstream): not callable until set.
    prompt_price = models.DecimalField(**PRICE, null=True, blank=True)
    completion_price = models.DecimalField(**PRICE, null=True, blank=True)
    request_price = models.DecimalField(**PRICE, default=Decimal(0))
    image_price = models.DecimalField(**PRICE, default=Decimal(0))
    cache_read_price = models.DecimalField(**PRICE, null=True, blank=True)
    # `input_cache_write` (NULL: the provider bills no write premium) and `web_search`, USD per search
    # (NULL: no native search, so OpenRouter's Exa engine and its fee apply).
    cache_write_price = models.DecimalField(**PRICE, null=True, blank=True)
    web_search_price = models.DecimalField(**PRICE, null=True, blank=True)
    price_set_by_admin = models.BooleanField(default=False)
    is_available = models.BooleanField(default=True)
    expiration_date = models.DateField(null=True, blank=True)
    upstream_created = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_synced = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True)

    objects = CatalogModelQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["is_available", "id"])]

    def __str__(self) -> str:
        return self.id

    @property
    def price_known(self) -> bool:
        return self.prompt_price is not None and self.completion_price is not None

    @property
    def supports_tools(self) -> bool:
        return "tools" in self.supported_parameters

    @property
    def supports_images(self) -> bool:
        return "image" in self.input_modalities

    @property
    def is_free(self) -> bool:
        return self.prompt_price == 0 and self.completion_price == 0 and self.request_price == 0

    @property
    def prompt_price_per_million(self) -> Decimal | None:
        return None if self.prompt_price is None else self.prompt_price * MILLION

    @property
    def completion_price_per_million(self) -> Decimal | None:
        return None if self.completion_price is None else self.completion_price * MILLION


class PriceChange(models.Model):
    """A model's prices from `effective_from` on, so the cost of past usage stays explainable."""

    class Source(models.TextChoices):
        SYNC = "sync"
        ADMIN = "admin"

    model = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="price_changes")
    prompt_price = models.DecimalField(**PRICE, null=True, blank=True)
    completion_price = models.DecimalField(**PRICE, null=True, blank=True)
    request_price = models.DecimalField(**PRICE, default=Decimal(0))
    image_price = models.DecimalField(**PRICE, default=Decimal(0))
    cache_read_price = models.DecimalField(**PRICE, null=True, blank=True)
    cache_write_price = models.DecimalField(**PRICE, null=True, blank=True)
    web_search_price = models.DecimalField(**PRICE, null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SYNC)
    # Set by the writer (not auto_now_add) so a sync's rows all carry the sync's own timestamp.
    effective_from = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-effective_from"]
        get_latest_by = "effective_from"


class QualityRank(models.Model):
    """The admins' ordered list of preferred models for `orweb/auto:quality` (lower rank = better)."""

    model = models.OneToOneField(CatalogModel, on_delete=models.CASCADE, related_name="quality_rank")
    rank = models.PositiveIntegerField()

    class Meta:
        ordering = ["rank"]

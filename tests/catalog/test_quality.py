"""The default quality order of `orweb/auto:quality` when admins ranked nothing."""

from __future__ import annotations

import pytest

from catalog import quality
from catalog.models import CatalogModel

pytestmark = pytest.mark.django_db


def test_it_puts_the_top_price_tier_first_and_free_models_last(catalog):
    ordered = [m.pk for m in quality.default_order(list(CatalogModel.objects.callable()))]
    assert ordered[0] in ("anthropic/claude-opus-4.1", "anthropic/claude-3-opus")
    tiers = [quality.tier_of(CatalogModel.objects.get(pk=pk)) for pk in ordered]
    assert tiers == sorted(tiers)
    assert CatalogModel.objects.get(pk=ordered[-1]).is_free


def test_within_a_tier_tools_and_a_longer_context_win(catalog):
    opus_new = CatalogModel.objects.get(pk="anthropic/claude-opus-4.1")
    opus_old = CatalogModel.objects.get(pk="anthropic/claude-3-opus")
    assert quality.tier_of(opus_new) == quality.tier_of(opus_old) == 0
    first = quality.default_order([opus_old, opus_new])[0]
    assert first.supports_tools and (first.context_length or 0) >= (opus_old.context_length or 0)


def test_it_says_why_in_words(catalog):
    why = quality.why_default(CatalogModel.objects.get(pk="openai/gpt-4o"))
    assert "default quality order" in why and "frontier price tier" in why and "128,000-token context" in why

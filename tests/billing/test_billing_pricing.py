"""Prices: the worst case a hold reserves, and the catalog-price estimate when upstream reports no cost."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.pricing import PROMPT_MARGIN_TOKENS, estimate, worst_case
from catalog.models import CatalogModel

PRICED = CatalogModel(
    id="x/priced",
    prompt_price=Decimal("0.000001"),
    completion_price=Decimal("0.000002"),
    request_price=Decimal("0.001"),
    image_price=Decimal("0.01"),
)
UNPRICED = CatalogModel(id="x/unpriced", prompt_price=None, completion_price=Decimal("0.000002"))


def test_the_worst_case_covers_the_prompt_with_margin_all_output_the_request_and_images():
    held_prompt = 125 + PROMPT_MARGIN_TOKENS  # 100 tokens counted by us, 25% more by the provider's count
    assert worst_case(PRICED, 100, 50, images=2) == (
        held_prompt * Decimal("0.000001") + 50 * Decimal("0.000002") + Decimal("0.001") + 2 * Decimal("0.01")
    )


def test_a_model_without_a_known_price_has_no_worst_case():
    with pytest.raises(ValueError, match="x/unpriced has no known price"):
        worst_case(UNPRICED, 100, 50)


def test_an_estimate_is_at_catalog_price_and_zero_only_for_a_model_without_one():
    assert estimate(PRICED, 100, 50) == Decimal("0.0012")
    assert estimate(UNPRICED, 100, 50) == 0
    assert estimate(None, 100, 50) == 0

"""How prices and sizes read on the page."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.templatetags.catalog_tags import per_million, tokens


@pytest.mark.parametrize(
    ("per_token", "shown"),
    [
        ("0.0000025", "$2.50"),
        ("0.00001", "$10.00"),
        ("0.0000000375", "$0.0375"),
        ("0.000000028", "$0.028"),
        ("0.000000000001", "$0.000001"),
        ("0.015", "$15,000.00"),
        ("0", "free"),
    ],
)
def test_prices_are_shown_per_million_tokens(per_token, shown):
    assert per_million(Decimal(per_token)) == shown


def test_an_unknown_price_says_so():
    assert per_million(None) == "price unknown"


def test_token_counts_are_grouped():
    assert tokens(1047576) == "1,047,576"
    assert tokens(None) == "?"

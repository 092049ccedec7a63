"""Money on the chat pages: readable at every scale, never rounded to $0 when something was spent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chat.templatetags.chat_format import tokens_short, usd


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("0"), "$0"),
        (Decimal("5.0000000000"), "$5.00"),
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0.04210000"), "$0.0421"),
        (Decimal("0.0000123000"), "$0.0000123"),
        ("0.0000000001", "$0.0000000001"),
        (None, ""),
    ],
)
def test_it_formats_dollars(amount, shown):
    assert usd(amount) == shown


@pytest.mark.parametrize(("tokens", "shown"), [(None, ""), (512, "512"), (16385, "16k"), (1_048_576, "1.05M")])
def test_it_shortens_context_lengths(tokens, shown):
    assert tokens_short(tokens) == shown

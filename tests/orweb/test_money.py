"""Money as people see it: readable at every scale, never rounded to $0 when something was spent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template

from orweb.money import format_usd, json_usd, plain_usd


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("0"), "$0"),
        (Decimal("5.0000000000"), "$5.00"),
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0.04210000"), "$0.0421"),
        (Decimal("0.0000123000"), "$0.0000123"),
        ("0.0000000001", "$0.0000000001"),
        (Decimal("-0.5"), "-$0.50"),
        (Decimal("0.0005"), "$0.0005"),
        (None, ""),
    ],
)
def test_it_formats_dollars(amount, shown):
    assert format_usd(amount) == shown


def test_every_template_has_the_usd_filter():
    assert Template("{{ amount|usd }}").render(Context({"amount": Decimal("0.0004")})) == "$0.0004"


def test_machines_get_the_exact_amount():
    assert plain_usd(Decimal("0.000420000")) == "0.00042"
    assert plain_usd(None) is None


def test_usd_amounts_become_json_numbers_with_their_exact_digits():
    assert repr(json_usd(Decimal("0.0001234567"))) == "0.0001234567"
    assert repr(json_usd(Decimal("12345.6789012345"))) == "12345.6789012345"

"""The server-side tools: exact, bounded arithmetic; time zones; catalog look-ups; never an exception."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from catalog.models import CatalogModel
from chat.tools import TOOLS, calculate, run_tool, schemas


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2+3*4", "14"),
        ("(2+3)*4.5", "22.5"),
        ("0.1+0.2", "0.3"),
        ("2**10", "1024"),
        ("7//2", "3"),
        ("-3^2", "-9"),
    ],
)
def test_it_calculates_exactly(expression, expected):
    assert calculate(expression) == expected


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('id')", "open('/etc/passwd')", "9**9**9", "1/0", "a+1", "x" * 300, "[1,2]"],
)
def test_it_refuses_anything_but_bounded_arithmetic(expression):
    assert run_tool("calculator", json.dumps({"expression": expression})).startswith("error:")


def test_it_answers_bad_arguments_as_a_result():
    assert run_tool("calculator", "{not json").startswith("error:")
    assert run_tool("calculator", "[1]").startswith("error:")
    assert run_tool("nope", "{}").startswith("error:")


def test_it_tells_the_time_in_a_zone():
    assert run_tool("current_time", '{"timezone": "Asia/Tokyo"}').endswith("+09:00")
    assert run_tool("current_time", '{"timezone": "Mars/Base"}').startswith("error:")


@pytest.mark.django_db
def test_it_looks_up_a_catalog_model():
    CatalogModel.objects.create(
        id="acme/small",
        name="Acme Small",
        context_length=8192,
        prompt_price=Decimal("0.0000001"),
        completion_price=Decimal("0.0000004"),
    )
    info = json.loads(run_tool("model_info", '{"model": "acme/small"}'))
    assert info["context_length"] == 8192
    assert info["prompt_usd_per_million_tokens"] == "0.1"
    assert info["completion_usd_per_million_tokens"] == "0.4"
    assert run_tool("model_info", '{"model": "acme/none"}').startswith("error:")


def test_schemas_are_openai_tools():
    found = schemas(["calculator", "unknown", "current_time"])
    assert [s["function"]["name"] for s in found] == ["calculator", "current_time"]
    assert set(TOOLS) == {"calculator", "current_time", "model_info"}

"""Page views that answer htmx with a part of the page say so in their types (orweb.htmx)."""

from __future__ import annotations

import inspect
import typing

import pytest

from catalog import views as catalog_views
from chat import views as chat_views
from orweb.htmx import HtmxHttpRequest


@pytest.mark.parametrize(
    ("views", "expected"), [(chat_views, {"index", "conversation"}), (catalog_views, {"model_list"})]
)
def test_every_view_that_reads_request_htmx_takes_a_typed_htmx_request(views, expected):
    readers = [
        function
        for _, function in inspect.getmembers(views, inspect.isfunction)
        if function.__module__ == views.__name__
        and any(
            use in inspect.getsource(inspect.unwrap(function)) for use in ("request.htmx", "wants_partial(request)")
        )
    ]
    assert {function.__name__ for function in readers} >= expected
    for function in readers:
        hints = typing.get_type_hints(inspect.unwrap(function), globalns=vars(views))
        assert hints["request"] is HtmxHttpRequest, function.__name__

"""Chat views that answer htmx with a part of the page say so in their types (as catalog's do)."""

from __future__ import annotations

import inspect
import typing

from chat import views


def test_every_view_that_reads_request_htmx_takes_a_typed_htmx_request():
    readers = [
        function
        for _, function in inspect.getmembers(views, inspect.isfunction)
        if function.__module__ == views.__name__
        and any(use in inspect.getsource(inspect.unwrap(function)) for use in ("request.htmx", "_partial(request)"))
    ]
    assert {function.__name__ for function in readers} >= {"index", "conversation"}
    for function in readers:
        hints = typing.get_type_hints(inspect.unwrap(function), globalns=vars(views))
        assert hints["request"] is views.HtmxHttpRequest, function.__name__

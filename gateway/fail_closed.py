"""Fail closed: when the database can't be reached, a call is refused with ServiceUnavailable, so nothing
is spent that can't be metered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError

from orweb import aio
from orweb.errors import ServiceUnavailable

T = TypeVar("T")


@contextmanager
def database_reachable() -> Iterator[None]:
    """A lost or refused database connection inside the block becomes ServiceUnavailable (503)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise ServiceUnavailable("The database can't be reached right now; try again soon.") from exc


def db(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`orweb.aio.db` (the loop's thread pool, connections handed back) with `database_reachable` inside."""

    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> T:
        with database_reachable():
            return function(*args, **kwargs)

    return aio.db(guarded)

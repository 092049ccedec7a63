"""Hand-written statements on the hot paths (a budget hold, a settle, a call's admission, a chat send),
run as prepared statements, with rows read back as JSON into model instances.

Django's cursors bind parameters on the client and never prepare, so PostgreSQL parses and plans every
statement anew (for billing's CTEs planning took ~0.75 ms, longer than running them), and the ORM spends
~0.5 ms of Python per query building SQL. `fetch` binds on the server and prepares each statement once
per pooled connection. Database errors still come out as Django's (OperationalError, IntegrityError,
...), the statements still run in the caller's transaction, if any, and they are logged where Django
logs queries (so tests counting queries count them).

`json_row` selects a row as a JSON array of its model's concrete fields (numerics as text, so prices stay
exact); `instance` turns such an array back into a model instance through its fields' own `to_python`.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

import psycopg
from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)


def fetch(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement on the default connection (prepared) and return its rows."""
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns automatic preparing off; only server-binding cursors like this one prepare at all.
        raw.prepare_threshold = 5
    started = time.monotonic()
    try:
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall()
    finally:
        if connection.queries_logged:
            # As Django's debug cursor does, so query counts in tests and debug pages include these.
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


def table(model: type[Model]) -> str:
    return f'"{model._meta.db_table}"'


def json_row(model: type[Model], alias: str) -> str:
    """SQL for the row `alias` of `model`'s table as a JSON array of its concrete fields, in their order."""
    columns = [
        f'{alias}."{f.column}"::text' if f.get_internal_type() == "DecimalField" else f'{alias}."{f.column}"'
        for f in model._meta.concrete_fields
    ]
    return f"json_build_array({', '.join(columns)})"


def instance(model: type[M], values: list[Any]) -> M:
    """The model instance a `json_row` array describes, as if the ORM had read it."""
    fields = model._meta.concrete_fields
    return model.from_db(
        connection.alias, [f.attname for f in fields], [f.to_python(v) for f, v in zip(fields, values, strict=True)]
    )

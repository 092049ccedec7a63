"""Point a DATABASE_URL at another database on the same server, TCP or unix socket alike."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def with_database(url: str, name: str) -> str:
    """`url` with its database name replaced; the query (e.g. `?host=/socket/dir`) is kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))

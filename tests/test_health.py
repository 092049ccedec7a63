"""GET /health reports the state of the database, Redis and the upstream API."""

from __future__ import annotations

import pytest
from django.test import AsyncClient

from orweb import health

pytestmark = pytest.mark.django_db(transaction=True)


async def _ok() -> None:
    return None


async def _down() -> None:
    raise ConnectionError("refused")


async def test_it_is_ok_when_everything_answers(monkeypatch):
    monkeypatch.setattr(health, "check_upstream", _ok)
    response = await AsyncClient().get("/health")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "upstream": "ok"}


async def test_it_names_what_is_down(monkeypatch, settings):
    monkeypatch.setattr(health, "check_upstream", _down)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = await AsyncClient().get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["redis", "upstream"]
    assert body["checks"]["database"] == "ok"


def test_the_database_check_hands_its_connection_back():
    from django.db import connection

    health._database()

    assert connection.connection is None

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


async def test_the_database_check_hands_its_connection_back(settings):
    """More checks than the pool has connections: each must give its connection back, or one waits out
    the pool's timeout and fails."""
    pool_size = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
    for _ in range(pool_size + 5):
        await health.check_database()

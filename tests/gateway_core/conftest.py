from __future__ import annotations

import pytest
import redis
from django.conf import settings
from metering_helpers import load_catalog


@pytest.fixture(autouse=True)
def _clean_rate_limits():
    """Rate-limit counters and stream slots live in Redis: each test starts with none."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("orweb:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def catalog(db):
    load_catalog()


@pytest.fixture
def member(db, django_user_model):
    return django_user_model.objects.create_user("member", password="x")


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_user("boss", password="x", is_staff=True)

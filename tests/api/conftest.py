"""The API tests' keys (one per persona that calls /v1) and the official SDK pointed at the live app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai
import pytest

from gateway.keys import hash_secret
from gateway.models import ApiKey
from tests.helpers.personas import api_key


@dataclass
class Key:
    """A personal /v1 key and the secret its user was shown once."""

    key: ApiKey
    secret: str


def key_of(user: Any) -> Key:
    secret = api_key(user, f"{user.username} laptop")
    return Key(key=ApiKey.objects.get(hashed_key=hash_secret(secret)), secret=secret)


@pytest.fixture
def owner_key(owner) -> Key:
    return key_of(owner)


@pytest.fixture
def outsider_key(outsider) -> Key:
    return key_of(outsider)


def sdk(live_app, secret: str) -> openai.OpenAI:
    """The official SDK pointed at orweb's /v1, without its own retries (we test one request each)."""
    return openai.OpenAI(base_url=live_app.url + "/v1", api_key=secret, max_retries=0, timeout=30)


@pytest.fixture
def api(live_app, catalog, owner_key):
    """The SDK with the owner's key, against the live app (simulator and catalog ready)."""
    return sdk(live_app, owner_key.secret)

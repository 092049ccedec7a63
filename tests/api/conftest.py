"""Personas and helpers for the API tests: an owner with a key, another member, an admin."""

from __future__ import annotations

from dataclasses import dataclass

import openai
import pytest
from django.contrib.auth import get_user_model

from catalog.sync import sync_from_openrouter
from gateway.keys import create_key


@dataclass
class Persona:
    user: object
    secret: str
    key: object


def make_persona(username: str, **fields) -> Persona:
    user = get_user_model().objects.create_user(username, password="pw-" + username, **fields)
    key, secret = create_key(user, f"{username} laptop")
    return Persona(user=user, secret=secret, key=key)


@pytest.fixture
def owner(db) -> Persona:
    return make_persona("alice")


@pytest.fixture
def other(db) -> Persona:
    return make_persona("bob")


@pytest.fixture
def admin(db) -> Persona:
    return make_persona("root", is_staff=True, is_superuser=True)


def sdk(live_app, secret: str) -> openai.OpenAI:
    """The official SDK pointed at orweb's /v1, without its own retries (we test one request each)."""
    return openai.OpenAI(base_url=live_app.url + "/v1", api_key=secret, max_retries=0, timeout=30)


@pytest.fixture
def catalog(simulator, transactional_db):
    """The catalog synced from the (reset) simulator, as beat would."""
    sync_from_openrouter()


@pytest.fixture
def api(live_app, catalog, owner):
    """The SDK with the owner's key, against the live app (simulator and catalog ready)."""
    return sdk(live_app, owner.secret)

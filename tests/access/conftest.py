"""What the owner owns in the access tests, and the four sides to try it from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from chat.models import Attachment, Conversation, Message, Preset
from tests.helpers.personas import SIDES, api_key

SECRET = "The vault code is 4-8-15-16"
COMPARED = "Both columns whisper 23-42"


@dataclass
class Owned:
    conversation: Conversation
    attachment: Attachment
    preset: Preset
    compare_group: uuid.UUID
    key_secret: str
    said: str = SECRET
    compared: str = COMPARED


def _turn(conversation: Conversation, question: str, answer: str) -> None:
    asked = Message.objects.create(conversation=conversation, role="user", content=question)
    reply = Message.objects.create(conversation=conversation, parent=asked, role="assistant", content=answer)
    conversation.current_leaf = reply
    conversation.save()


@pytest.fixture
def owned(owner) -> Owned:
    """One of each thing a member owns: a conversation with a reply, an image in it, a preset, a
    comparison of two models, an API key."""
    conversation = Conversation.objects.create(user=owner, title="Vault plans", model="openai/gpt-4o-mini")
    _turn(conversation, "What is the code?", SECRET)
    image = b"\x89PNG\r\n\x1a\n owner's picture"
    attachment = Attachment.objects.create(
        user=owner, conversation=conversation, name="a.png", mime="image/png", size=len(image), sha256="x", data=image
    )
    preset = Preset.objects.create(user=owner, name="Terse", model="openai/gpt-4o-mini", system_prompt=SECRET)
    group = uuid.uuid4()
    for model in ("openai/gpt-4o-mini", "openai/gpt-4o"):
        column = Conversation.objects.create(user=owner, title="Compared", model=model, compare_group=group)
        _turn(column, "Compare", COMPARED)
    return Owned(conversation, attachment, preset, group, api_key(owner, "olivia's laptop"))


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest) -> str:
    """Each test runs once from each side (parametrize `side` to try fewer)."""
    return request.param


@pytest.fixture
def side_user(side: str, request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(side)


@pytest.fixture
def side_client(side: str, request: pytest.FixtureRequest) -> Client:
    return request.getfixturevalue(f"{side}_client")

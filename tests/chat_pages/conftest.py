"""The chat page tests' own world: three hand-made catalog rows, the owner's trip conversation, a PNG."""

from __future__ import annotations

import struct
import zlib
from decimal import Decimal

import pytest

from catalog.models import CatalogModel
from chat.models import Conversation, Message


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG, built by hand so the tests need no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x40\x40" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def three_models(db) -> list[CatalogModel]:
    """An image model, a text-only one and one without a price: what the pickers and pages tell apart."""
    return [
        CatalogModel.objects.create(
            id="openai/gpt-4o-mini",
            name="GPT-4o mini",
            context_length=128000,
            input_modalities=["text", "image"],
            supported_parameters=["tools", "temperature"],
            prompt_price=Decimal("0.00000015"),
            completion_price=Decimal("0.0000006"),
        ),
        CatalogModel.objects.create(
            id="meta-llama/llama-3.1-8b-instruct",
            name="Llama 3.1 8B",
            context_length=131072,
            input_modalities=["text"],
            supported_parameters=["temperature"],
            prompt_price=Decimal("0.00000002"),
            completion_price=Decimal("0.00000003"),
        ),
        CatalogModel.objects.create(
            id="x/unpriced",
            name="Unpriced",
            context_length=8000,
            input_modalities=["text"],
            prompt_price=None,
            completion_price=None,
        ),
    ]


def add_turn(conversation: Conversation, question: str, answer: str, **reply_fields) -> tuple[Message, Message]:
    """A user message and its reply on the shown branch."""
    asked = Message.objects.create(
        conversation=conversation, parent=conversation.current_leaf, role="user", content=question
    )
    reply = Message.objects.create(
        conversation=conversation, parent=asked, role="assistant", content=answer, **reply_fields
    )
    conversation.current_leaf = reply
    conversation.save()
    return asked, reply


@pytest.fixture
def trip(owner, three_models) -> Conversation:
    """The owner's "Trip planning" conversation: one question, one priced answer."""
    convo = Conversation.objects.create(user=owner, title="Trip planning", model="openai/gpt-4o-mini")
    add_turn(
        convo,
        "Where should we go?",
        "**Lisbon** is lovely.",
        served_model="openai/gpt-4o-mini",
        provider="OpenAI",
        prompt_tokens=12,
        completion_tokens=5,
        cost=Decimal("0.0000123"),
        ttft_ms=87,
        tokens_per_second=Decimal("41.50"),
    )
    return convo

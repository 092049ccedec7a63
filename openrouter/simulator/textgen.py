"""Deterministic text: the same request always gets the same reply, so tests can assert on it.

"Tokens" here are small pieces of text (whitespace plus up to four characters) whose concatenation
is exactly the original text, so a streamed reply reassembles byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
from typing import Any

_PIECE = re.compile(r"\s*\S{1,4}|\s+")
_DIRECTIVE = re.compile(r"\s*\[\[sim\s+([^\]]*)\]\]")
ECHO_PREFIX = "echo:"

_VOCABULARY = (
    "the a of and to in is that it for on with as was at by an be this from or are have not but we they "
    "you all one can will there their what about which when more time some would other into has could "
    "model token stream answer reply system request simple clear quiet small river light garden window "
    "morning signal pattern number letter question careful bright steady useful gentle"
)
_THINKING = (
    "first consider what the user asks then check the details weigh each option and settle on a short "
    "answer that is correct and helpful"
)
_WORDS = _VOCABULARY.split()
_THOUGHTS = _THINKING.split()


def tokenize(text: str) -> list[str]:
    """Split text into pieces whose concatenation is exactly ``text``."""
    return _PIECE.findall(text)


def seed_of(*parts: Any) -> int:
    """A stable seed from JSON-able parts (Python's ``hash`` is salted per process)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def generated_pieces(seed: int, count: int) -> list[str]:
    """About ``count`` pieces (whole words, a few over at most) of sentences chosen by ``seed``."""
    rng = random.Random(seed)
    pieces: list[str] = []
    sentence_left = 0
    while len(pieces) < count:
        word = rng.choice(_WORDS)
        if sentence_left == 0:
            sentence_left = rng.randint(6, 12)
            word = word.capitalize()
        sentence_left -= 1
        if sentence_left == 0 or len(pieces) + len(tokenize(word)) >= count:
            word += "."
        pieces.extend(tokenize(word if not pieces else " " + word))
    return pieces


def word(seed: int) -> str:
    """One vocabulary word chosen by ``seed`` (sample tool-call arguments)."""
    return random.Random(seed).choice(_WORDS)


def reasoning_pieces(seed: int) -> list[str]:
    """A short deterministic chain of thought for reasoning models."""
    rng = random.Random(seed ^ 0x5EED)
    words = _THOUGHTS[: rng.randint(10, len(_THOUGHTS))]
    return tokenize(" ".join(words).capitalize() + ".")


def reasoning_signature(text: str) -> str:
    """The provider's signature over reasoning text: a changed text no longer matches it."""
    return base64.b64encode(hashlib.sha256(b"sim-thinking:" + text.encode()).digest()).decode()


def default_length(seed: int) -> int:
    """Natural reply length when nothing sets it: 30 to 60 tokens."""
    return 30 + seed % 31


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A cheap, deterministic approximation: ceil(chars / 4) + 4 per message."""
    total = 0
    for message in messages:
        chars = len(content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            chars += len(json.dumps(call.get("function", {})))
        total += math.ceil(chars / 4) + 4
    return total


def strip_directives(text: str) -> tuple[str, list[str]]:
    """Remove ``[[sim ...]]`` directives from text, returning the text and the specs found."""
    specs = [m.group(1) for m in _DIRECTIVE.finditer(text)]
    return _DIRECTIVE.sub("", text), specs


def echo_text(text: str) -> str | None:
    """For ``echo: rest`` return ``rest`` (one space after the colon is dropped), else None."""
    stripped = text.lstrip()
    if not stripped.startswith(ECHO_PREFIX):
        return None
    rest = stripped[len(ECHO_PREFIX) :]
    return rest[1:] if rest.startswith(" ") else rest

"""Prompt caching, as providers bill it through OpenRouter.

* Explicit (Anthropic-style, and Gemini's explicit caching): ``cache_control: {"type": "ephemeral",
  "ttl"?: "5m" | "1h"}`` on content parts (at most 4 breakpoints) or at the top level (the whole prompt).
  The prefix up to the last breakpoint is written on first sight (``cache_write_tokens``, billed at
  ``input_cache_write`` for 5 minutes, twice the prompt price for an hour) and read while it lives
  (``cached_tokens`` at ``input_cache_read``), each read renewing it.
* Automatic (OpenAI, DeepSeek, Gemini 2.5, Grok): a prompt whose prefix (all but the last message) was
  seen in the last 5 minutes reads it from the cache, in steps of 128 tokens; writing costs nothing extra.

Either way a prefix shorter than MIN_TOKENS is not cached. Caches are per model and per simulator.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from openrouter.simulator.errors import SimError
from openrouter.simulator.state import Endpoint, SimModel, SimState
from openrouter.simulator.textgen import count_prompt_tokens

MIN_TOKENS = 1024
MAX_BREAKPOINTS = 4
AUTOMATIC_STEP = 128
TTLS = {"5m": 300.0, "1h": 3600.0}


@dataclass
class CacheUse:
    """Of a request's prompt: tokens read from the cache, tokens written to it, and for how long."""

    cached_tokens: int = 0
    write_tokens: int = 0
    ttl: str = "5m"


def _marks(messages: list[dict[str, Any]], body: dict[str, Any]) -> list[tuple[int, int, dict[str, Any]]]:
    """(message, part, cache_control) of every breakpoint; the top-level one marks the end of the prompt."""
    marks = []
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict) and part.get("cache_control") is not None:
                marks.append((i, j, part["cache_control"]))
    if len(marks) > MAX_BREAKPOINTS:
        raise SimError(
            400, f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(marks)}."
        )
    if body.get("cache_control") is not None:
        last = messages[-1].get("content")
        marks.append((len(messages) - 1, len(last) - 1 if isinstance(last, list) else 0, body["cache_control"]))
    for _, _, mark in marks:
        if not isinstance(mark, dict) or mark.get("type") != "ephemeral" or mark.get("ttl", "5m") not in TTLS:
            raise SimError(400, 'cache_control: expected {"type": "ephemeral", "ttl"?: "5m" | "1h"}')
    return marks


def _prefix(messages: list[dict[str, Any]], message: int, part: int) -> list[dict[str, Any]]:
    """The messages up to and including part `part` of message `message`."""
    head = [dict(m) for m in messages[: message + 1]]
    content = head[-1].get("content")
    if isinstance(content, list):
        head[-1]["content"] = content[: part + 1]
    return head


def _key(model: SimModel, prefix: list[dict[str, Any]]) -> tuple[str, str]:
    blob = json.dumps(prefix, sort_keys=True, ensure_ascii=False, default=str).encode()
    return model.id, hashlib.sha256(blob).hexdigest()


def use_cache(
    state: SimState, model: SimModel, endpoint: Endpoint, messages: list[dict[str, Any]], body: dict[str, Any]
) -> CacheUse:
    """What this request reads from and writes to the cache (and the cache updated accordingly)."""
    now = time.monotonic()
    marks = _marks(messages, body)
    if marks and endpoint.has_price("input_cache_write"):
        i, j, _ = marks[-1]
        ttl = "1h" if any(mark.get("ttl") == "1h" for _, _, mark in marks) else "5m"
        prefix = _prefix(messages, i, j)
        tokens = count_prompt_tokens(prefix)
        if tokens < MIN_TOKENS:
            return CacheUse()
        key = _key(model, prefix)
        hit = state.cache.get(key, 0.0) > now
        state.cache[key] = now + TTLS[ttl]
        return CacheUse(cached_tokens=tokens, ttl=ttl) if hit else CacheUse(write_tokens=tokens, ttl=ttl)
    if model.id.startswith("anthropic/") or not endpoint.has_price("input_cache_read") or len(messages) < 2:
        return CacheUse()
    prefix = messages[:-1]
    tokens = count_prompt_tokens(prefix)
    if tokens < MIN_TOKENS:
        return CacheUse()
    key = _key(model, prefix)
    hit = state.cache.get(key, 0.0) > now
    state.cache[key] = now + TTLS["5m"]
    return CacheUse(cached_tokens=tokens // AUTOMATIC_STEP * AUTOMATIC_STEP) if hit else CacheUse()

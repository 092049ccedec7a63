"""Builders for upstream `/models` entries in the shape OpenRouter sends."""

from __future__ import annotations

import copy
from typing import Any


def model_entry(model_id: str, **overrides: Any) -> dict[str, Any]:
    """A realistic `/models` entry; `pricing`, `architecture` etc. may be overridden whole."""
    entry: dict[str, Any] = {
        "id": model_id,
        "canonical_slug": f"{model_id}-2025-01-01",
        "name": f"Test: {model_id}",
        "created": 1744651369,
        "description": "A model for tests.",
        "context_length": 128000,
        "architecture": {
            "modality": "text+image->text",
            "input_modalities": ["text", "image"],
            "output_modalities": ["text"],
            "tokenizer": "GPT",
            "instruct_type": None,
        },
        "pricing": {"prompt": "0.0000025", "completion": "0.00001", "input_cache_read": "0.00000125"},
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": True},
        "per_request_limits": None,
        "supported_parameters": ["max_tokens", "temperature", "tools", "tool_choice"],
        "default_parameters": {},
        "expiration_date": None,
    }
    entry.update(copy.deepcopy(overrides))
    return entry

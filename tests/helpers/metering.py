"""Shared by tests/gateway_core and tests/billing: a catalog like the simulator's, users, requests."""

from __future__ import annotations

import json
from typing import Any

from catalog.sync import sync_catalog
from gateway.types import ChatRequest
from openrouter.simulator.state import CATALOG_PATH


def load_catalog() -> None:
    """The simulator's bundled models in the catalog, written by the real catalog sync."""
    sync_catalog([entry.get("model", entry) for entry in json.loads(CATALOG_PATH.read_text())])


def ask(text: str = "echo: hello there", model: str = "openai/gpt-4o-mini", **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": text}], **kwargs)


def image_request(model: str) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ],
    )


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def _data(payload: Any) -> Any:
    return payload["data"] if isinstance(payload, dict) and "data" in payload else payload


def upstream_calls(simulator: Any) -> int:
    """How many chat completions reached the simulator."""
    return _data(simulator.stats())["requests_total"]


def upstream_bodies(simulator: Any) -> list[dict[str, Any]]:
    """The chat completion bodies the simulator received, oldest first."""
    return [r["body"] for r in _data(simulator.control("GET", "requests").json())]


def in_thread(function: Any) -> Any:
    """Run ORM work from an async test in a thread, closing its connection afterwards."""
    from asgiref.sync import sync_to_async
    from django.db import connection

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)

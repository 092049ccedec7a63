"""Request bodies and a parser for streamed answers, shared by the simulator tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from openrouter.simulator import SimulatorConfig

KEY = "sk-or-v1-simulator-test"
FAST = SimulatorConfig(ttft=0, tps=0, generation_delay=0, keepalive_interval=0.05)


def chat(content: str | list[dict[str, Any]] = "hello", model: str = "openai/gpt-4o", **extra: Any) -> dict[str, Any]:
    """A chat request body with one user message."""
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 200, **extra}


@dataclass
class Stream:
    """A streamed answer taken apart: comments, JSON chunks (or raw text when invalid), and [DONE]."""

    items: list[str | dict[str, Any]]

    @classmethod
    def parse(cls, text: str) -> Stream:
        items: list[str | dict[str, Any]] = []
        for block in text.split("\n\n"):
            if not block:
                continue
            if block.startswith(":"):
                items.append(block)
            else:
                assert block.startswith("data: "), block
                data = block[len("data: ") :]
                try:
                    items.append(json.loads(data))
                except json.JSONDecodeError:
                    items.append(data)
        return cls(items)

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [i for i in self.items if isinstance(i, dict)]

    @property
    def content(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c.get("choices"))

    @property
    def finish_reasons(self) -> list[str]:
        return [
            c["choices"][0]["finish_reason"]
            for c in self.chunks
            if c.get("choices") and c["choices"][0]["finish_reason"]
        ]

    @property
    def usage(self) -> dict[str, Any] | None:
        return next((c["usage"] for c in self.chunks if "usage" in c), None)

    @property
    def done(self) -> bool:
        return self.items[-1] == "[DONE]"

"""Building clients over canned HTTP responses, and reading streams to the end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx

from openrouter import Event, OpenRouterClient, RetryPolicy

API_KEY = "sk-or-v1-test-secret-0123456789abcdef"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total=5)
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def sse(*chunks: dict[str, Any] | str) -> bytes:
    """An SSE body: dicts become `data: <json>` events, strings are written as they are."""
    parts = [f"data: {json.dumps(c)}\n\n" if isinstance(c, dict) else c for c in chunks]
    return "".join(parts).encode()


def streaming_response(pieces: Iterable[bytes], status: int = 200, **headers: str) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    return httpx.Response(status, headers={"content-type": "text/event-stream", **headers}, content=body())


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> OpenRouterClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return OpenRouterClient(API_KEY, "https://openrouter.test/api/v1", transport=httpx.MockTransport(handler), **kwargs)


class Replies:
    """A MockTransport handler that answers `responses` in turn (repeating the last) and keeps the requests.

    Callables are called per request, so a streaming body can be served more than once.
    """

    def __init__(self, *responses: httpx.Response | Callable[[], httpx.Response]) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        return response() if callable(response) else response

    @property
    def models(self) -> list[str]:
        return [json.loads(r.content)["model"] for r in self.requests]


async def collect(client: OpenRouterClient, body: dict[str, Any] = BODY, **kwargs: Any) -> list[Event]:
    async with client.stream(body, **kwargs) as events:
        return [event async for event in events]

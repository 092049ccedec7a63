"""OpenRouter's Batch API (beta): submit many chat requests at once, poll for their results.

It lives beside the chat API, not under it: ``{origin}/api/v1`` is the chat base URL, ``{origin}/api/beta/
batches`` the batches (``batches_url``). Results come within 24 h at about half the list price, each with
its generation id and reported ``usage.cost``. Errors are the main client's typed errors
(`openrouter.errors`), the API key scrubbed; nothing is retried here: a submission must not be sent twice
without the caller knowing (the caller records that it is submitting first).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from openrouter.errors import ConnectionFailed, InvalidResponse, RequestTimeout, error_from_response

ENDPOINT = "/v1/chat/completions"


def batches_url(base_url: str) -> str:
    """The Batch API's URL for a chat base URL: ``https://openrouter.ai/api/v1`` -> ``.../api/beta/batches``."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + "/beta/batches"


class BatchApiClient:
    """Submit and retrieve batches; one connection pool, closed with ``aclose`` (or ``async with``)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://openrouter.ai/api/v1",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 60,
    ) -> None:
        self._api_key = api_key
        self._url = batches_url(base_url)
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}"}, transport=transport, timeout=timeout
        )

    async def __aenter__(self) -> BatchApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, model: str, requests: list[dict[str, Any]]) -> dict[str, Any]:
        """Submit ``[{custom_id, body}]`` for ``model``; the batch object (``id``, ``status`` validating)."""
        body = {"endpoint": ENDPOINT, "model": model, "requests": requests}
        return await self._call("POST", self._url, content=json.dumps(body, default=_json_default).encode())

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        """The batch now: its status, and once ``completed`` its ``results`` per ``custom_id``."""
        return await self._call("GET", f"{self._url}/{batch_id}")

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"} if "content" in kwargs else {}
        try:
            response = await self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"OpenRouter did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"Could not reach OpenRouter: {exc or type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content, response.headers).redact(self._api_key)
        try:
            payload = json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise InvalidResponse(f"OpenRouter sent a body that is not JSON: {response.content[:200]!r}") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            raise InvalidResponse("Expected a batch object with an id")
        return payload


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")

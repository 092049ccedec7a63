"""Which OpenRouter call an admitted request becomes (`Admission.endpoint`): a chat completion (with the
fallback chain), embeddings, or a Responses API call, streamed or not. The metered path around them is
the same for all."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from gateway.admission import Admission
from gateway.embeddings import embeddings_body
from gateway.responses_api import responses_body
from openrouter import ChatResult, EventStream, OpenRouterClient
from openrouter.client import BilledResult, Observer


async def call(client: OpenRouterClient, admission: Admission, observe: Observer) -> ChatResult | BilledResult:
    """The non-streaming call."""
    cache = admission.response_cache
    if admission.endpoint == "embeddings":
        return await client.embeddings(embeddings_body(admission.body), observe=observe, response_cache=cache)
    if admission.endpoint == "responses":
        return await client.responses(responses_body(admission.body), observe=observe, response_cache=cache)
    fallbacks = [m.pk for m in admission.chain[1:]]
    return await client.chat(admission.body, fallback_models=fallbacks, observe=observe, response_cache=cache)


def open_stream(
    client: OpenRouterClient, admission: Admission, observe: Observer
) -> AbstractAsyncContextManager[EventStream]:
    """The streaming call (chat or Responses; embeddings don't stream)."""
    cache = admission.response_cache
    if admission.endpoint == "responses":
        return client.stream_responses(responses_body(admission.body), observe=observe, response_cache=cache)
    fallbacks = [m.pk for m in admission.chain[1:]]
    return client.stream(admission.body, fallback_models=fallbacks, observe=observe, response_cache=cache)


def reply_of(answer: ChatResult | BilledResult) -> dict[str, Any]:
    """The reply fields of a `Completion` (empty for embeddings and responses: their body is `raw`)."""
    if isinstance(answer, ChatResult):
        return {
            "content": answer.content,
            "reasoning": answer.reasoning,
            "tool_calls": answer.tool_calls,
            "finish_reason": answer.finish_reason or "stop",
            "reasoning_details": answer.reasoning_details,
            "annotations": answer.annotations,
            "images": answer.images,
        }
    return {"content": "", "reasoning": None, "tool_calls": [], "finish_reason": "stop"}

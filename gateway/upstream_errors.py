"""OpenRouter's errors as the gateway reports them: an UpstreamFailed with the status that says what the
failure means to the caller (the request's own problem, the provider's, or orweb's account)."""

from __future__ import annotations

from openrouter import (
    AuthenticationError,
    BadRequest,
    InsufficientCredits,
    ModerationError,
    NotFound,
    OpenRouterError,
    Overloaded,
    RateLimited,
    RequestTimeout,
)
from orweb.errors import UpstreamFailed


def upstream_failed(error: OpenRouterError) -> UpstreamFailed:
    """The gateway's error for an OpenRouter error, after retries and fallbacks were spent."""
    if isinstance(error, BadRequest):
        status, message = 400, f"The model provider rejected the request: {error.message}"
    elif isinstance(error, AuthenticationError):
        status, message = 502, "orweb's OpenRouter key was refused; tell an admin."
    elif isinstance(error, InsufficientCredits):
        status, message = 402, "The shared OpenRouter account is out of credits; tell an admin."
    elif isinstance(error, ModerationError):
        status, message = 403, f"The request was blocked by moderation: {error.message}"
    elif isinstance(error, NotFound):
        status, message = 404, f"No provider can serve this request: {error.message}"
    elif isinstance(error, RateLimited):
        status, message = 429, "The model provider is rate limiting; try again later."
    elif isinstance(error, Overloaded):
        status, message = 503, "The model provider is overloaded; try again later."
    elif isinstance(error, RequestTimeout):
        status, message = 504, "The model provider did not answer in time."
    else:
        status, message = 502, f"The model provider failed: {error.message}"
    return UpstreamFailed(message, status=status, upstream=error, retry_after=error.retry_after)

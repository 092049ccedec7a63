"""Typed OpenRouter errors, built liberally from whatever an error response or error chunk looks like.

The class says what a caller can do about it (retry, fall back to another model, tell the user); the
instance keeps OpenRouter's own message and metadata untouched, except for the API key, which is
scrubbed by `redact` before an error leaves the client.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


class OpenRouterError(Exception):
    """Base class: `status` is the HTTP status (None for errors inside a 200 stream), `code` OpenRouter's."""

    retriable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: Any = None,
        metadata: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.metadata = metadata or {}
        self.retry_after = retry_after
        self.attempts: list[tuple[str, OpenRouterError]] = []

    @property
    def error_type(self) -> str | None:
        value = self.metadata.get("error_type")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.status}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"

    def redact(self, secret: str) -> OpenRouterError:
        """Remove `secret` from the message and metadata, in case a server echoed it back."""
        if secret and secret in repr((self.message, self.metadata)):
            self.message = self.message.replace(secret, "[redacted]")
            self.metadata = _scrub(self.metadata, secret)
            self.args = (self.message,)
        return self


class BadRequest(OpenRouterError):
    pass


class AuthenticationError(OpenRouterError):
    pass


class InsufficientCredits(OpenRouterError):
    pass


class ModerationError(OpenRouterError):
    @property
    def reasons(self) -> list[str]:
        return list(self.metadata.get("reasons") or [])

    @property
    def flagged_input(self) -> str | None:
        return self.metadata.get("flagged_input")


class NotFound(OpenRouterError):
    pass


class NoEndpoint(NotFound):
    """No provider serves this model (or this model with these parameters): another model may."""


class RequestTimeout(OpenRouterError):
    retriable = True


class IdleTimeout(RequestTimeout):
    """No content arrived for `idle_timeout` seconds; keep-alive comments do not count as content."""


class RateLimited(OpenRouterError):
    retriable = True


class UpstreamError(OpenRouterError):
    retriable = True


class Overloaded(OpenRouterError):
    retriable = True


class InvalidResponse(OpenRouterError):
    pass


class IncompleteStream(OpenRouterError):
    """The stream ended with neither a finish_reason nor [DONE]; retriable only if nothing was streamed."""

    retriable = True


class ConnectionFailed(OpenRouterError):
    retriable = True


_BY_STATUS: dict[int, type[OpenRouterError]] = {
    400: BadRequest,
    401: AuthenticationError,
    402: InsufficientCredits,
    403: ModerationError,
    404: NotFound,
    408: RequestTimeout,
    413: BadRequest,
    422: BadRequest,
    429: RateLimited,
    502: UpstreamError,
    503: Overloaded,
    504: RequestTimeout,
    524: RequestTimeout,
}

_BY_ERROR_TYPE: dict[str, type[OpenRouterError]] = {
    "context_length_exceeded": BadRequest,
    "invalid_image": BadRequest,
    "rate_limit_exceeded": RateLimited,
    "provider_overloaded": Overloaded,
    "provider_unavailable": UpstreamError,
    "content_policy_violation": ModerationError,
    "payment_required": InsufficientCredits,
}


def _loads(body: bytes | str) -> Any:
    return json.loads(body, parse_float=Decimal)


def _scrub(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, "[redacted]")
    if isinstance(value, dict):
        return {k: _scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secret) for v in value]
    return value


def _error_class(status: int | None, error_type: str | None, message: str) -> type[OpenRouterError]:
    if status is not None and status >= 400:
        if status == 404:
            lowered = message.lower()
            return NoEndpoint if "endpoint" in lowered or "provider" in lowered else NotFound
        return _BY_STATUS.get(status) or (UpstreamError if status >= 500 else OpenRouterError)
    if error_type in _BY_ERROR_TYPE:
        return _BY_ERROR_TYPE[error_type]
    return UpstreamError


def _seconds(value: Any) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _retry_after(headers: Mapping[str, str], metadata: dict[str, Any], status: int | None) -> float | None:
    meta_headers = metadata.get("headers")
    meta_headers = {k.lower(): v for k, v in meta_headers.items()} if isinstance(meta_headers, dict) else {}
    for value in (
        headers.get("retry-after"),
        metadata.get("retry_after"),
        metadata.get("retryAfter"),
        meta_headers.get("retry-after"),
    ):
        if (seconds := _seconds(value)) is not None:
            return seconds
    reset = meta_headers.get("x-ratelimit-reset") or headers.get("x-ratelimit-reset")
    if status == 429 and reset is not None:
        try:
            epoch = float(reset)
        except (TypeError, ValueError):
            return None
        # OpenRouter sends epoch milliseconds; accept seconds too.
        return max(0.0, (epoch / 1000 if epoch > 1e11 else epoch) - time.time())
    return None


def _text_of(body: bytes) -> str:
    """A short readable message from a non-JSON body (an HTML error page, plain text)."""
    text = body.decode("utf-8", "replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        text = title.group(1)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())[:300]


def error_from_payload(
    error: Any,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> OpenRouterError:
    """Build the typed error for an `error` object (from an error body or a mid-stream error chunk)."""
    if not isinstance(error, dict):
        error = {"message": str(error)} if error else {}
    message = error.get("message")
    message = message if isinstance(message, str) and message else "OpenRouter returned an error"
    code = error.get("code")
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    effective = status if status is not None and status >= 400 else None
    if effective is None and isinstance(code, int) and 400 <= code <= 599:
        effective = code
    error_type = metadata.get("error_type")
    cls = _error_class(effective, error_type if isinstance(error_type, str) else None, message)
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return cls(
        message,
        status=status,
        code=code,
        metadata=metadata,
        retry_after=_retry_after(lowered, metadata, effective),
    )


def error_from_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> OpenRouterError:
    """Build the typed error for an HTTP error response, whatever its body: JSON, HTML, text or nothing."""
    try:
        payload = _loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        error = payload["error"]
    elif isinstance(payload, dict) and isinstance(payload.get("message"), str):
        error = payload
    else:
        error = {"message": _text_of(body) or f"HTTP {status}"}
    if isinstance(error, str):
        error = {"message": error}
    return error_from_payload(error, status=status, headers=headers)

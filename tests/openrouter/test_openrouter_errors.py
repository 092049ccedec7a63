"""Typed errors from whatever OpenRouter answers: its JSON bodies, bare statuses, HTML pages."""

from __future__ import annotations

import json

import pytest

from openrouter import (
    AuthenticationError,
    BadRequest,
    InsufficientCredits,
    ModerationError,
    NoEndpoint,
    NotFound,
    OpenRouterError,
    Overloaded,
    RateLimited,
    RequestTimeout,
    UpstreamError,
    error_from_response,
)


def body(code: int, message: str, **metadata: object) -> bytes:
    error = {"code": code, "message": message}
    if metadata:
        error["metadata"] = metadata
    return json.dumps({"error": error, "user_id": "user_1"}).encode()


@pytest.mark.parametrize(
    ("status", "message", "cls", "retriable"),
    [
        (400, "x/y is not a valid model ID", BadRequest, False),
        (401, "No auth credentials found", AuthenticationError, False),
        (402, "This request requires more credits, or fewer max_tokens.", InsufficientCredits, False),
        (403, "Your input was flagged", ModerationError, False),
        (404, "No endpoints found for x/y.", NoEndpoint, False),
        (404, "Generation not found", NotFound, False),
        (408, "Request timed out", RequestTimeout, True),
        (429, "Rate limit exceeded", RateLimited, True),
        (500, "Internal Server Error", UpstreamError, True),
        (502, "Provider returned error", UpstreamError, True),
        (503, "No instances available", Overloaded, True),
        (418, "I'm a teapot", OpenRouterError, False),
    ],
)
def test_it_types_each_status(status, message, cls, retriable):
    error = error_from_response(status, body(status, message), {})
    assert type(error) is cls
    assert (error.status, error.code, error.message, error.retriable) == (status, status, message, retriable)


def test_a_generation_not_found_is_not_a_missing_endpoint():
    assert not isinstance(error_from_response(404, body(404, "Generation not found")), NoEndpoint)


def test_it_keeps_metadata_and_error_type():
    error = error_from_response(
        502,
        body(502, "Provider returned error", raw="upstream said no", provider_name="Fireworks", error_type="x"),
    )
    assert error.metadata == {"raw": "upstream said no", "provider_name": "Fireworks", "error_type": "x"}
    assert error.error_type == "x"


def test_it_reads_moderation_reasons():
    error = error_from_response(403, body(403, "flagged", reasons=["harassment"], flagged_input="you ..."))
    assert (error.reasons, error.flagged_input) == (["harassment"], "you ...")


def test_moderation_without_metadata_has_no_reasons():
    error = error_from_response(403, body(403, "flagged"))
    assert (error.reasons, error.flagged_input) == ([], None)


def test_it_reads_retry_after_from_the_header():
    error = error_from_response(429, body(429, "slow down"), {"Retry-After": "7"})
    assert error.retry_after == 7


def test_it_reads_retry_after_as_an_http_date():
    error = error_from_response(503, b"", {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert error.retry_after == 0


def test_it_reads_retry_after_from_metadata():
    assert error_from_response(429, body(429, "slow down", retry_after=3)).retry_after == 3


def test_it_reads_openrouters_rate_limit_reset_in_milliseconds():
    error = error_from_response(429, body(429, "free-models-per-min", headers={"X-RateLimit-Reset": "1000"}))
    assert error.retry_after == 0


def test_it_has_no_retry_after_when_none_is_given():
    assert error_from_response(503, body(503, "busy")).retry_after is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "HTTP 502"),
        (b"Bad Gateway", "Bad Gateway"),
        (
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>cloudflare</h1></body></html>",
            "502 Bad Gateway",
        ),
        (b'{"error": "Unauthorized"}', "Unauthorized"),
        (b'{"message": "Overloaded"}', "Overloaded"),
        (b'{"error": {}}', "OpenRouter returned an error"),
        (b"[1, 2, 3]", "[1, 2, 3]"),
        (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
    ],
)
def test_it_is_liberal_about_bodies(payload, message):
    error = error_from_response(502, payload, {})
    assert type(error) is UpstreamError
    assert error.message == message


def test_the_http_status_wins_over_the_body_code():
    assert type(error_from_response(429, body(503, "busy"))) is RateLimited


def test_a_200_body_with_an_error_is_typed_by_its_code_then_its_error_type():
    assert type(error_from_response(200, body(402, "credits"))) is InsufficientCredits
    assert (
        type(
            error_from_response(
                200,
                json.dumps({"error": {"message": "m", "metadata": {"error_type": "provider_overloaded"}}}).encode(),
            )
        )
        is Overloaded
    )


def test_it_redacts_a_secret_from_message_and_metadata():
    error = error_from_response(401, body(401, "bad key sk-secret", raw={"echo": ["Bearer sk-secret"]}))
    error.redact("sk-secret")
    text = f"{error} {error!r} {error.args} {error.metadata}"
    assert "sk-secret" not in text
    assert "[redacted]" in error.message


def test_str_and_repr_say_what_happened():
    error = error_from_response(503, body(503, "No instances available"))
    assert str(error) == "503: No instances available"
    assert repr(error) == "Overloaded(status=503, code=503, message='No instances available')"

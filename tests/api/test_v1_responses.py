"""What /v1 answers: exact amounts, and failures mapped to what they mean for the caller, in OpenAI's shape."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.api_responses import error_response_parts, upstream_status
from openrouter import errors as upstream
from orweb.errors import BudgetExceeded, RateLimitExceeded, UpstreamFailed


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (upstream.RateLimited("slow down", status=429, retry_after=3), 429),
        (upstream.Overloaded("busy", status=503), 503),
        (upstream.UpstreamError("provider down", status=502), 502),
        (upstream.InsufficientCredits("out of credit", status=402), 503),
        (upstream.AuthenticationError("User not found.", status=401), 502),
        (upstream.RequestTimeout("timeout", status=408), 504),
        (upstream.IdleTimeout("idle"), 504),
        (upstream.ModerationError("flagged", status=403), 403),
        (upstream.BadRequest("context too long", status=400), 400),
    ],
)
def test_upstream_failures_map_to_what_they_mean_for_the_caller(error, status):
    assert upstream_status(UpstreamFailed(str(error), status=error.status or 502, upstream=error)) == status


def test_rate_limits_say_when_to_retry():
    status, payload, headers = error_response_parts(RateLimitExceeded("Too many requests", retry_after=2.2))
    assert status == 429
    assert headers == {"Retry-After": "3"}
    assert payload["error"]["type"] == "rate_limit_error"


def test_budget_errors_are_402_in_openai_shape():
    error = BudgetExceeded("The monthly budget of user x can't cover this", budget="b", remaining=Decimal(1))
    status, payload, _ = error_response_parts(error)
    assert status == 402
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert payload["error"]["code"] == "budget_exceeded"

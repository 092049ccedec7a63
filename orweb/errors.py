"""Why a model call was refused or failed: each error knows its HTTP status and a message for people.

They live here, below every app, because each layer raises some of them (billing refuses budgets and
rate limits, the gateway policy and upstream failures) and every caller above handles them all."""

from __future__ import annotations

from decimal import Decimal


class GatewayError(Exception):
    """Base class. `status` is what /v1 answers; `code` is a stable machine-readable name."""

    status = 500
    code = "gateway_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(GatewayError):
    """The request itself is wrong; `param` names the field."""

    status = 400
    code = "invalid_request"


class InvalidApiKey(GatewayError):
    """The personal API key is unknown or revoked, or its user is inactive."""

    status = 401
    code = "invalid_api_key"


class ModelNotAllowed(GatewayError):
    status = 403
    code = "model_not_allowed"


class ModelUnavailable(GatewayError):
    """Unknown, retired, or priced as "unknown" (not callable until an admin sets a price)."""

    status = 404
    code = "model_unavailable"


class BudgetExceeded(GatewayError):
    """A budget that applies can't cover the worst case of this call."""

    status = 402
    code = "budget_exceeded"

    def __init__(self, message: str, *, budget: str, remaining: Decimal) -> None:
        super().__init__(message)
        self.budget = budget
        self.remaining = remaining


class RateLimitExceeded(GatewayError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(GatewayError):
    """Database or Redis unreachable: the gateway fails closed rather than spend unmetered."""

    status = 503
    code = "service_unavailable"


class UpstreamFailed(GatewayError):
    """OpenRouter answered with an error (after retries and fallbacks); `upstream` is the typed error."""

    code = "upstream_error"

    def __init__(
        self, message: str, *, status: int, upstream: Exception | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.upstream = upstream
        self.retry_after = retry_after

"""When to try a failed OpenRouter call again, and how long to wait first.

The loop is stamina's (so retries show up in its logging/Prometheus instrumentation); the policy is
ours, because stamina's jitter is additive and it cannot see Retry-After: full-jitter exponential
backoff, Retry-After honoured as given, and nothing started that would end past `max_total`.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass

import stamina

from openrouter.errors import OpenRouterError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to `max_attempts` tries within `max_total` seconds; only errors marked `retriable` are retried."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8
    max_total: float = 30
    jitter: bool = True

    def delay(self, retry_number: int, error: BaseException, elapsed: float) -> float | None:
        """Seconds to wait before retry `retry_number` (1-based) after `error`, or None to give up."""
        if not isinstance(error, OpenRouterError) or not error.retriable or retry_number >= self.max_attempts:
            return None
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
            wait = random.uniform(0, ceiling) if self.jitter else ceiling
        return wait if elapsed + wait <= self.max_total else None

    def attempts(self) -> AsyncIterable[stamina.Attempt]:
        """`async for attempt in policy.attempts(): with attempt: ...` — a fresh retry loop."""
        started = time.monotonic()
        retries = 0

        def backoff(error: Exception) -> bool | float:
            nonlocal retries
            wait = self.delay(retries + 1, error, time.monotonic() - started)
            if wait is None:
                return False
            retries += 1
            return wait

        return stamina.retry_context(on=backoff, attempts=self.max_attempts, timeout=None)

"""Signed webhooks: how orweb POSTs to a URL someone configured (budget alerts, a batch job's end).

The body is JSON, signed with HMAC-SHA256 under a shared secret so the receiver can tell it came from
orweb, and carries a delivery id that stays the same on every try so the receiver can drop repeats:

    X-Orweb-Signature: sha256=<hex HMAC of the raw body>
    X-Orweb-Delivery: <id>

A try that doesn't answer 2xx is tried again after 5 s, 10 s, 20 s... (at most 10 minutes). Redirects are
not followed: a webhook answers where it was configured. Each caller claims its tries in its own table.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx

SIGNATURE_HEADER = "X-Orweb-Signature"
DELIVERY_HEADER = "X-Orweb-Delivery"
TIMEOUT = 10.0
FIRST_WAIT = 5.0
MAX_WAIT = 600.0


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for `body`: what a receiver recomputes with the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(url: str, body: bytes, *, secret: str, delivery: str) -> str | None:
    """One signed POST; None when the receiver answered 2xx, else what went wrong, in words."""
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret), DELIVERY_HEADER: delivery}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    if response.is_success:
        return None
    return f"The webhook answered {response.status_code}."


def wait_after(tries: int) -> float:
    """Seconds to wait after the `tries`-th failed try (counted from 1)."""
    return min(MAX_WAIT, FIRST_WAIT * 2 ** (tries - 1))

"""Login throttling: after LOGIN_FAILURE_LIMIT failed sign-ins for one username, or from one client
address, every sign-in for it is refused, the right password included, for LOGIN_LOCKOUT_SECONDS.

Both sign-in pages (/login/ and /admin/login/) use the forms below. Counters live in Redis, which already
holds the rate limits: one INCR per failure on a key that expires, nothing to migrate or prune. We chose
this over django-axes: axes finds its middleware by class in MIDDLEWARE (ours is wrapped by
orweb.middleware.pages_only, so its checks would need silencing), writes a database row per attempt, and
answers a lockout with a page of its own instead of the sign-in form's message.

The lock's end is a timestamp from Python's clock (kept in a key that also expires), so a test can move
time past it with freezegun. The client address is REMOTE_ADDR: behind a reverse proxy, run the server
so that it is the client's (daphne's `--proxy-headers`), or every user shares the proxy's address.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest

from orweb.redis_clients import sync_client

logger = logging.getLogger("orweb.login")

PREFIX = "orweb:login"


def _keys(kind: str, value: str) -> tuple[str, str]:
    """The failure counter and lock keys of one username or address (hashed: user text never forms a
    key as it is)."""
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]
    return f"{PREFIX}:failures:{kind}:{digest}", f"{PREFIX}:locked:{kind}:{digest}"


def _subjects(username: str, address: str) -> list[tuple[str, str]]:
    """What a sign-in is counted against: usernames compare case-insensitively, so "Admin" and "admin"
    share one counter."""
    return [("username", username.casefold()), ("address", address)]


def locked_until(username: str, address: str) -> float | None:
    """When the lock on this username or address ends (a Unix time), or None when neither is locked."""
    lock_keys = [_keys(kind, value)[1] for kind, value in _subjects(username, address)]
    ends = [float(end) for end in sync_client().mget(lock_keys) if end is not None]
    latest = max(ends, default=0.0)
    return latest if latest > time.time() else None


def record_failure(username: str, address: str) -> None:
    """Count one failed sign-in against the username and the address; lock whichever reaches the limit."""
    client = sync_client()
    window = settings.LOGIN_LOCKOUT_SECONDS
    for kind, value in _subjects(username, address):
        failures_key, lock_key = _keys(kind, value)
        with client.pipeline() as pipe:
            # The window starts at the first failure (SET NX; INCR keeps the expiry). Redis 6 has no EXPIRE NX.
            _, count = pipe.set(failures_key, 0, ex=window, nx=True).incr(failures_key).execute()
        if count >= settings.LOGIN_FAILURE_LIMIT:
            with client.pipeline() as pipe:
                pipe.set(lock_key, str(time.time() + window), ex=window).delete(failures_key).execute()
            logger.warning("sign-in locked for %d s: %d failed sign-ins for %s %r", window, count, kind, value[:150])


def client_address(request: HttpRequest | None) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def lockout_message(until: float) -> str:
    minutes = max(1, math.ceil((until - time.time()) / 60))
    return (
        "Too many failed sign-ins for this account or from your address. Signing in is paused; "
        f"try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


class ThrottledMixin:
    """Refuses a locked username or address before checking the password; counts each failed check."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]
    user_cache: Any

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        until = locked_until(username, address)
        if until is not None:
            raise forms.ValidationError(lockout_message(until), code="locked")
        try:
            return super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            # user_cache is set when the password was right but the account may not sign in here (a
            # member at /admin/login/): that is no guess, so it is not counted.
            if self.user_cache is None:
                record_failure(username, address)
            raise

    @property
    def locked(self) -> bool:
        """True when this form was refused by the throttle (the page then says so instead of "no match")."""
        return any(error.code == "locked" for error in self.errors.as_data().get("__all__", []))  # type: ignore[attr-defined]


class ThrottledLoginForm(ThrottledMixin, AuthenticationForm):
    """The /login/ form."""


class ThrottledAdminLoginForm(ThrottledMixin, AdminAuthenticationForm):
    """The /admin/login/ form."""

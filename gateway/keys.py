"""Personal API keys: made here, shown once, stored only as a SHA-256, looked up by that hash.

A secret is `orw-` plus 40 URL-safe characters (240 random bits), so a plain SHA-256 is enough: nobody
can brute-force the preimage, and an indexed equality lookup on the hash leaks nothing useful through
timing (the attacker would have to guess hashes, not secrets).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.utils import timezone

from gateway.models import ApiKey
from orweb.text import pg_text

SECRET_PREFIX = "orw-"
SHOWN_PREFIX_LENGTH = 12
# last_used_at is for people ("used 3 minutes ago"): one write a minute per key is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(30)


def create_key(user: AbstractBaseUser, name: str) -> tuple[ApiKey, str]:
    """A new key for `user`; the secret is returned here and never stored or shown again. Pages refuse a
    name PostgreSQL can't store; other callers (the management command) get it made storable."""
    secret = new_secret()
    key = ApiKey.objects.create(
        user=user,
        name=pg_text(name.strip()) or "API key",
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        hashed_key=hash_secret(secret),
    )
    return key, secret


def candidate_hash(secret: str) -> str | None:
    """The hash to look a secret up by, or None when it can't be one of our keys."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    return hash_secret(secret)


def _stale(key: ApiKey, now: datetime) -> Q | None:
    """The filter that records use, or None when it was recorded less than LAST_USED_RESOLUTION ago.

    Filtering on the old value turns concurrent touches of one key into a single write.
    """
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return None
    return Q(pk=key.pk) & (Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION))


def authenticate(secret: str) -> ApiKey | None:
    """The active key for this secret, with its (active) user loaded; None when unknown or revoked."""
    hashed = candidate_hash(secret)
    if hashed is None:
        return None
    key = ApiKey.objects.select_related("user").filter(hashed_key=hashed, revoked_at__isnull=True).first()
    if key is None or not key.user.is_active:
        return None
    note_use(key)
    return key


def note_use(key: ApiKey) -> None:
    """Record that the key was just used (at most one write per LAST_USED_RESOLUTION)."""
    now = timezone.now()
    if (stale := _stale(key, now)) is not None:
        ApiKey.objects.filter(stale).update(last_used_at=now)
        key.last_used_at = now


def can_manage(key: ApiKey, user: AbstractBaseUser) -> bool:
    return key.user_id == user.pk or bool(user.is_staff)


def revoke(key: ApiKey, by_user: AbstractBaseUser) -> bool:
    """Revoke `key` (its owner or an admin only). False when it was already revoked."""
    if not can_manage(key, by_user):
        raise PermissionDenied("Only the key's owner or an admin can revoke it.")
    now = timezone.now()
    changed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if changed:
        key.revoked_at = now
    return bool(changed)


MISSING_KEY = "Missing API key: send 'Authorization: Bearer <your orweb key>'."


def bearer_secret(headers: Any) -> str | None:
    """The secret a /v1 caller sent as `Authorization: Bearer <secret>`, not yet checked; None if none."""
    scheme, _, secret = headers.get("Authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None

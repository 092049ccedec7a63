"""A chat socket lives only as long as its sign-in: closed at once when its user is deactivated (or
deleted) or its session signs out, in whichever process it is open, and re-checked before every action
that spends.

Every socket joins two channel-layer groups besides its conversation's: its user's and its session's
(the session key hashed: group names end up in Redis, and a session key is a credential). The receivers
below (connected in `chat.apps`) send `chat.signed_out` to them; the channel layer carries it to every
process. Sending is best effort: with Redis away it is logged, and the re-check still refuses to spend.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest

log = logging.getLogger(__name__)

SIGNED_OUT = "chat.signed_out"
DEACTIVATED = "Your account has been deactivated."
ENDED = "You have been signed out. Sign in again to continue."


class SignedOut(Exception):
    """The socket's user or session is no longer signed in."""


def user_group(user_id: int) -> str:
    """The group every socket of a user joins."""
    return f"user.{user_id}"


def session_group(session_key: str) -> str:
    """The group every socket opened with a session joins."""
    return f"session.{hashlib.sha256(session_key.encode()).hexdigest()[:40]}"


def still_signed_in(session_key: str | None, user_id: int) -> bool:
    """Whether `user_id` is still signed in with that session, as Django's auth would decide for a page
    now: the session exists, names this user, its password hash still matches, and the user is active.
    Database reads: call in a thread. A socket opened without a session (an app mounted without the
    session middleware) is checked by its user row alone."""
    if session_key is None:
        return auth.get_user_model().objects.filter(pk=user_id, is_active=True).exists()
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return auth.get_user(request).pk == user_id


@dataclass(frozen=True)
class SignIn:
    """What a socket was opened with, to check again before it spends."""

    user_id: int
    session_key: str | None

    def check(self) -> None:
        """Raise SignedOut unless `still_signed_in` (database reads: call in a thread)."""
        if not still_signed_in(self.session_key, self.user_id):
            raise SignedOut(ENDED)


def _close(group: str, message: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": SIGNED_OUT, "message": message})
    except Exception:  # never fail a logout or an admin's save over this: the re-check still holds
        log.warning("could not close the sockets of %s", group, exc_info=True)


def close_user_sockets(user_id: int, message: str = DEACTIVATED) -> None:
    """Close every open chat socket of a user, in every process."""
    _close(user_group(user_id), message)


def close_session_sockets(session_key: str, message: str = ENDED) -> None:
    """Close every open chat socket opened with this session, in every process."""
    _close(session_group(session_key), message)


def on_logged_out(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """`user_logged_out`: that session's sockets go with it (sent before Django flushes the session)."""
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        close_session_sockets(session.session_key)


def on_user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """`post_save` of a user: a deactivated user's sockets close."""
    if not instance.is_active:
        close_user_sockets(instance.pk)


def on_user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """`post_delete` of a user: their sockets close."""
    close_user_sockets(instance.pk, ENDED)

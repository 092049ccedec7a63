"""People: creating a person with a one-time set-password link, deactivating, staff on/off, groups.

Each change is one transaction with its audit row. Deactivation needs nothing more than `is_active=False`
saved through the model: API keys check it on every call (gateway.keys.authenticate), pages through
Django's auth, and chat sockets close on the user's post_save (chat.disconnect).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from console.audit import person_state, record


class RefusedChange(Exception):
    """A change an admin may not make (to themselves, or to a superuser without being one)."""


def set_password_path(user: Any) -> str:
    """The path of a set-password link for `user`: Django's password-reset token, so it works once (the
    token is bound to the password hash and the last sign-in) and expires after PASSWORD_RESET_TIMEOUT."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("console:set_password", args=[uid, default_token_generator.make_token(user)])


def mail_configured() -> bool:
    """Whether e-mail really leaves the server (the default, EMAIL_URL unset, only logs it)."""
    return settings.EMAIL_BACKEND != "django.core.mail.backends.console.EmailBackend"


def create_person(actor: Any, *, username: str, email: str, groups: list[Group], is_staff: bool) -> Any:
    """A new active person with no usable password: they choose one through the set-password link."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=username, email=email, is_staff=is_staff)
        user.groups.set(groups)
        record(actor, "person.create", "person", user, None, person_state(user))
    return user


def send_set_password_link(user: Any, link: str) -> None:
    """E-mail the link to the person (only when mail is configured and they have an address)."""
    send_mail(
        "Your orweb account",
        f"An admin made you an orweb account ({user.get_username()}). Choose your password here:\n\n{link}\n\n"
        "The link works once.",
        None,
        [user.email],
    )


def issue_link(actor: Any, user: Any) -> str:
    """A fresh set-password link; recorded, since it lets whoever holds it sign in as the person."""
    if not user.is_active:
        raise RefusedChange("Reactivate the person before giving them a set-password link.")
    _guard(actor, user)
    record(actor, "person.password_link", "person", user, None, {"link_issued": True}, label=user.get_username())
    return set_password_path(user)


def _guard(actor: Any, user: Any) -> None:
    if user.is_superuser and not actor.is_superuser:
        raise PermissionDenied("Only a superuser can change a superuser.")


def set_active(actor: Any, user: Any, active: bool) -> None:
    """Deactivate (keys, pages and sockets stop at once) or reactivate a person."""
    if user.pk == actor.pk and not active:
        raise RefusedChange("You can't deactivate yourself.")
    _guard(actor, user)
    _save(actor, user, "person.activate" if active else "person.deactivate", is_active=active)


def set_staff(actor: Any, user: Any, staff: bool) -> None:
    """Give or take staff status (staff manage everything here and may call every model)."""
    if user.pk == actor.pk and not staff:
        raise RefusedChange("You can't take away your own staff status.")
    _guard(actor, user)
    _save(actor, user, "person.staff_on" if staff else "person.staff_off", is_staff=staff)


def set_groups(actor: Any, user: Any, groups: list[Group]) -> None:
    """Put the person in exactly these groups (their models, limits and budgets follow)."""
    _guard(actor, user)
    with transaction.atomic():
        before = person_state(user)
        user.groups.set(groups)
        record(actor, "person.groups", "person", user, before, person_state(user))


def _save(actor: Any, user: Any, action: str, **fields: Any) -> None:
    with transaction.atomic():
        before = person_state(user)
        for name, value in fields.items():
            setattr(user, name, value)
        user.save(update_fields=list(fields))
        record(actor, action, "person", user, before, person_state(user))

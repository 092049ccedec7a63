"""Sign-in throttling (orweb.login_throttle): 20 failures for a username, or from an address, refuse every
sign-in for it, the right password included, on /login/ and /admin/login/, until the lockout passes."""

from __future__ import annotations

import datetime
import logging

import freezegun
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.test import Client

pytestmark = pytest.mark.django_db

RIGHT = "the-right-password"
PAUSED = "Too many failed sign-ins"


@pytest.fixture(autouse=True)
def _fast_hashing(settings) -> None:
    """Sixty sign-ins with the real hasher take most of a minute; the throttle doesn't care which it is."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def member(username: str, **fields) -> object:
    return get_user_model().objects.create(username=username, password=make_password(RIGHT), **fields)


def sign_in(username: str, password: str, address: str, path: str = "/login/") -> Client:
    """A fresh browser at `address` posting the sign-in form; returns it (signed in or not)."""
    client = Client(REMOTE_ADDR=address)
    client.response = client.post(path, {"username": username, "password": password})
    return client


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(username: str, times: int, address: str | None = None, path: str = "/login/") -> None:
    """`times` wrong passwords for `username`, each from an address of its own unless one is given."""
    for attempt in range(times):
        client = sign_in(username, "wrong", address or f"10.1.{attempt // 250}.{attempt % 250}", path)
        assert client.response.status_code == 200 and not signed_in(client)


def test_twenty_wrong_passwords_lock_the_account_even_for_the_right_password(caplog):
    member("olivia")
    caplog.set_level(logging.WARNING, logger="orweb.login")

    fail("olivia", 20)
    refused = sign_in("olivia", RIGHT, "10.9.9.9")

    assert not signed_in(refused)
    assert PAUSED in refused.response.text and "try again in 15 minutes" in refused.response.text
    assert "username and password don't match" not in refused.response.text
    assert "sign-in locked for 900 s: 20 failed sign-ins for username 'olivia'" in caplog.text


def test_nineteen_wrong_passwords_do_not_lock_the_account():
    member("olivia")

    fail("olivia", 19)

    assert signed_in(sign_in("olivia", RIGHT, "10.9.9.9"))


def test_the_username_is_counted_whatever_its_case():
    member("olivia")

    fail("Olivia", 10)
    fail("OLIVIA", 10)

    assert not signed_in(sign_in("olivia", RIGHT, "10.9.9.9"))


def test_a_locked_account_leaves_other_people_alone():
    member("olivia")
    member("tomas")

    fail("olivia", 20)

    assert signed_in(sign_in("tomas", RIGHT, "10.9.9.9"))


def test_twenty_failures_from_one_address_lock_that_address_for_everyone(caplog):
    member("tomas")
    caplog.set_level(logging.WARNING, logger="orweb.login")

    for number in range(20):
        fail(f"guess{number}", 1, address="192.0.2.7")

    assert not signed_in(sign_in("tomas", RIGHT, "192.0.2.7"))
    assert signed_in(sign_in("tomas", RIGHT, "192.0.2.8"))
    assert "failed sign-ins for address '192.0.2.7'" in caplog.text


def test_after_the_lockout_the_right_password_works_again():
    member("olivia")
    with freezegun.freeze_time() as clock:
        fail("olivia", 20)
        clock.tick(datetime.timedelta(minutes=14))
        assert not signed_in(sign_in("olivia", RIGHT, "10.9.9.9"))

        clock.tick(datetime.timedelta(minutes=1, seconds=1))
        assert signed_in(sign_in("olivia", RIGHT, "10.9.9.9"))


def test_the_admin_sign_in_is_throttled_too():
    member("root", is_staff=True, is_superuser=True)

    fail("root", 20, path="/admin/login/")
    refused = sign_in("root", RIGHT, "10.9.9.9", path="/admin/login/")

    assert not signed_in(refused)
    assert PAUSED in refused.response.text


def test_failures_at_either_page_count_together():
    member("olivia")

    fail("olivia", 10, path="/admin/login/")
    fail("olivia", 10)

    assert not signed_in(sign_in("olivia", RIGHT, "10.9.9.9"))


def test_a_member_with_the_right_password_at_the_admin_page_is_no_failure():
    """The admin refuses members who give the right password; that is not guessing, so it is not counted."""
    member("olivia")

    for _ in range(20):
        assert not signed_in(sign_in("olivia", RIGHT, "10.9.9.9", path="/admin/login/"))

    assert signed_in(sign_in("olivia", RIGHT, "10.9.9.9"))

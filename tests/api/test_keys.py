"""Personal API keys: shown once, stored hashed, revocable by their owner or an admin."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from gateway.keys import authenticate, create_key, revoke
from gateway.models import ApiKey

pytestmark = pytest.mark.django_db


def test_it_stores_only_a_hash_and_a_visible_prefix(owner):
    key, secret = create_key(owner, "laptop")
    assert secret.startswith("orw-") and len(secret) == 44
    assert key.hashed_key == hashlib.sha256(secret.encode()).hexdigest()
    assert key.prefix == secret[:12]
    assert secret not in str(ApiKey.objects.filter(pk=key.pk).values().get())


def test_it_authenticates_the_secret_and_no_other(owner_key):
    secret = owner_key.secret
    assert authenticate(secret).pk == owner_key.key.pk
    assert authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert authenticate("sk-or-v1-something") is None
    assert authenticate("") is None


def test_a_revoked_key_no_longer_authenticates(owner, owner_key):
    assert revoke(owner_key.key, owner) is True
    assert authenticate(owner_key.secret) is None
    assert revoke(owner_key.key, owner) is False


def test_a_deactivated_users_key_no_longer_authenticates(owner, owner_key):
    owner.is_active = False
    owner.save()
    assert authenticate(owner_key.secret) is None


def test_it_records_use_at_most_once_a_minute(owner_key):
    first = authenticate(owner_key.secret).last_used_at
    assert first is not None
    assert authenticate(owner_key.secret).last_used_at == first
    ApiKey.objects.filter(pk=owner_key.key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    assert authenticate(owner_key.secret).last_used_at > first


def test_only_the_owner_or_an_admin_can_revoke(owner_key, outsider, staff):
    with pytest.raises(PermissionDenied):
        revoke(owner_key.key, outsider)
    assert ApiKey.objects.get(pk=owner_key.key.pk).revoked_at is None
    assert revoke(owner_key.key, staff) is True


def test_the_command_prints_the_key_as_its_last_line(owner, capsys):
    call_command("create_api_key", "olivia", "--name", "ci")
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    key = authenticate(secret)
    assert key.user == owner and key.name == "ci"


def test_the_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="nobody"):
        call_command("create_api_key", "nobody")

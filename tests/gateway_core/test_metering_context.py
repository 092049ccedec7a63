"""Admission reads the key, policies, models and rate limits in one statement (gateway.context): what it
reads must be what the ORM would read, and an admin's change must apply to the very next call."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import OperationalError
from django.utils import timezone

from billing.models import RateLimit
from catalog.models import CatalogModel
from gateway import context, metered
from gateway.admission import admit_key
from gateway.keys import create_key, revoke
from gateway.models import ApiKey, GroupPolicy
from gateway.policy import allowed_models, check_model_allowed
from orweb import sql
from orweb.errors import InvalidApiKey, ModelNotAllowed, RateLimitExceeded, ServiceUnavailable
from tests.helpers.metering import ask

MODEL = "openai/gpt-4o-mini"


def _group(name, user, **policy):
    group = Group.objects.create(name=name)
    group.user_set.add(user)
    GroupPolicy.objects.create(group=group, **policy)
    return group


@pytest.mark.django_db
def test_it_reads_the_same_rows_as_the_orm(catalog, owner):
    group = _group(
        "g", owner, allow_by_rule=True, max_price_per_million=Decimal("0.5"), required_capabilities=["tools"]
    )
    RateLimit.objects.create(group=group, requests_per_minute=7)
    RateLimit.objects.create(user=owner, tokens_per_minute=900)
    key, secret = create_key(owner, "laptop")
    ids = [MODEL, "openai/gpt-4o", "no/such-model"]

    read = context.for_key(secret, ids)

    assert read.user == owner and read.user.username == "olivia" and read.user.is_active
    assert read.api_key == key and read.api_key.user is read.user and read.api_key.last_used_at is not None
    assert set(read.models) == {MODEL, "openai/gpt-4o"}
    for model_id, model in read.models.items():
        expected = CatalogModel.objects.get(pk=model_id)
        for field in CatalogModel._meta.concrete_fields:
            assert getattr(model, field.attname) == getattr(expected, field.attname), field.name
    assert read.models[MODEL].prompt_price == CatalogModel.objects.get(pk=MODEL).prompt_price
    assert isinstance(read.models[MODEL].prompt_price, Decimal)
    assert [p.pk for p in read.policies] == [group.model_policy.pk]
    assert read.policies[0].max_price_per_million == Decimal("0.5")
    assert read.policies[0].required_capabilities == ["tools"]
    assert {(r.user_id, r.group_id, r.requests_per_minute, r.tokens_per_minute) for r in read.rate_limits} == {
        (owner.pk, None, None, 900),
        (None, group.pk, 7, None),
    }


@pytest.mark.django_db
def test_it_reads_for_a_user_without_a_key(catalog, owner):
    read = context.for_user(owner, [MODEL])
    assert read.user is owner and read.api_key is None and read.policies == [] and read.rate_limits == []
    assert list(read.models) == [MODEL]


@pytest.mark.django_db
def test_an_unknown_revoked_or_inactive_key_reads_nothing(catalog, owner):
    key, secret = create_key(owner, "laptop")
    assert context.for_key("orw-not-a-key", [MODEL]) is None
    assert context.for_key("sk-or-v1-someone-elses", [MODEL]) is None
    owner.is_active = False
    owner.save()
    assert context.for_key(secret, [MODEL]) is None
    owner.is_active = True
    owner.save()
    revoke(key, owner)
    with pytest.raises(InvalidApiKey) as refused:
        admit_key(secret, ask(), source="api")
    assert refused.value.status == 401


@pytest.mark.django_db
def test_a_recent_use_is_not_written_again(catalog, owner):
    key, secret = create_key(owner, "laptop")
    recently = timezone.now() - dt.timedelta(seconds=5)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=recently)
    assert context.for_key(secret, [MODEL]).api_key.last_used_at == recently
    assert ApiKey.objects.get(pk=key.pk).last_used_at == recently


@pytest.mark.django_db
def test_the_python_policy_check_agrees_with_the_query(catalog, owner):
    _group(
        "rule",
        owner,
        allow_by_rule=True,
        max_price_per_million=Decimal("0.5"),
        required_capabilities=["image", "tools"],
    )
    _group("list", owner, allowed_models=["openai/gpt-4o"])
    listed = set(allowed_models(owner).values_list("pk", flat=True))
    checked = set()
    for model in CatalogModel.objects.filter(
        is_available=True, prompt_price__isnull=False, completion_price__isnull=False
    ):
        with contextlib.suppress(ModelNotAllowed):
            checked.add(check_model_allowed(owner, model.pk, model).pk)
    assert checked == listed
    assert "openai/gpt-4o" in checked and "meta-llama/llama-4-scout" in checked
    assert "google/gemma-3-27b-it" not in checked


@pytest.mark.django_db
def test_an_admin_change_applies_to_the_next_call(catalog, owner, settings):
    settings.ORWEB_DEFAULT_ALLOW_ALL = True
    _key, secret = create_key(owner, "laptop")
    admit_key(secret, ask(), source="api")

    group = _group("narrow", owner, allowed_models=["openai/gpt-4o"])
    with pytest.raises(ModelNotAllowed):
        admit_key(secret, ask(), source="api")

    group.model_policy.allowed_models = [MODEL]
    group.model_policy.save()
    admit_key(secret, ask(), source="api")

    RateLimit.objects.create(user=owner, requests_per_minute=2)
    with pytest.raises(RateLimitExceeded):
        admit_key(secret, ask(), source="api")


@pytest.mark.django_db
def test_an_admins_group_policies_do_not_apply(catalog, staff):
    _group("tiny", staff, allowed_models=[MODEL])
    _key, secret = create_key(staff, "laptop")
    assert context.for_key(secret, [MODEL]).policies == []
    assert admit_key(secret, ask(model="openai/gpt-4o"), source="api").chain[0].pk == "openai/gpt-4o"


@pytest.mark.django_db(transaction=True)
async def test_it_fails_closed_when_the_database_is_down(owner, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(sql, "fetch", down)
    with pytest.raises(ServiceUnavailable) as refused:
        async with metered.stream_with_key("orw-" + "x" * 40, ask()):
            pass
    assert refused.value.status == 503

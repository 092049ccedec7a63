"""What admission reads from PostgreSQL about a call, in one round trip.

The API key and its user, the policies of the user's groups, the catalog rows of the requested models and
the rate-limit rows that apply took four ORM queries (~0.75 ms each, mostly Django and query planning) on
every call. `_statement()` reads them all as one prepared statement (`orweb.sql`), always fresh: nothing is
cached, so an admin's change applies to the next call in every process. Each row comes back as a JSON
array of its columns (numerics as text, so prices stay exact) and becomes a model instance through its
fields' own `to_python` (`orweb.sql.instance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model

from billing.models import RateLimit
from catalog.models import CatalogModel
from gateway.keys import candidate_hash, note_use
from gateway.models import ApiKey, GroupPolicy
from gateway.policy import is_unrestricted
from orweb import sql


@dataclass
class CallContext:
    """Everything admission checks a call against, as it stood when read."""

    user: Any
    api_key: ApiKey | None
    policies: list[GroupPolicy]
    models: dict[str, CatalogModel]
    rate_limits: list[RateLimit]


@cache
def _statement() -> str:
    """Built on first use: the user model's table is only known once apps are loaded."""
    user = get_user_model()
    groups = user.groups.through
    return f"""
WITH key AS (
    SELECT * FROM {sql.table(ApiKey)} WHERE hashed_key = %(hash)s::text AND revoked_at IS NULL
),
who AS (
    SELECT * FROM {sql.table(user)} WHERE id = coalesce((SELECT user_id FROM key), %(user)s::bigint)
),
member_of AS (
    SELECT group_id FROM {sql.table(groups)} WHERE user_id = (SELECT id FROM who)
)
SELECT
    (SELECT {sql.json_row(ApiKey, "k")} FROM key k),
    (SELECT {sql.json_row(user, "u")} FROM who u),
    (SELECT json_agg({sql.json_row(GroupPolicy, "p")}) FROM {sql.table(GroupPolicy)} p
     WHERE p.group_id IN (SELECT group_id FROM member_of)),
    (SELECT json_agg({sql.json_row(CatalogModel, "m")}) FROM {sql.table(CatalogModel)} m
     WHERE m.id = ANY(%(models)s::text[])),
    (SELECT json_agg({sql.json_row(RateLimit, "r")}) FROM {sql.table(RateLimit)} r
     WHERE r.user_id = (SELECT id FROM who) OR r.group_id IN (SELECT group_id FROM member_of))
"""


def for_user(user: Any, model_ids: list[str]) -> CallContext:
    """The context of a call by `user` (chat, batches, the app itself)."""
    context = _load(model_ids, user=user)
    assert context is not None
    return context


def for_key(secret: str, model_ids: list[str]) -> CallContext | None:
    """The context of a call by the holder of the API key `secret`; None when that key is unknown or
    revoked, or its user inactive. Its use is recorded as `gateway.keys.authenticate` does."""
    hashed = candidate_hash(secret)
    if hashed is None:
        return None
    return _load(model_ids, hashed=hashed)


def _load(model_ids: list[str], *, user: Any = None, hashed: str | None = None) -> CallContext | None:
    key_row, user_row, policy_rows, model_rows, limit_rows = sql.fetch(
        _statement(), {"hash": hashed, "user": None if user is None else user.pk, "models": model_ids}
    )[0]
    api_key = None
    if hashed is not None:
        if key_row is None or user_row is None:
            return None
        user = sql.instance(get_user_model(), user_row)
        if not user.is_active:
            return None
        api_key = sql.instance(ApiKey, key_row)
        api_key.user = user
        note_use(api_key)
    models = (sql.instance(CatalogModel, row) for row in model_rows or [])
    return CallContext(
        user=user,
        api_key=api_key,
        # As `policies_of`: admins are unrestricted, their groups' policies don't apply.
        policies=[] if is_unrestricted(user) else [sql.instance(GroupPolicy, row) for row in policy_rows or []],
        models={model.pk: model for model in models},
        rate_limits=[sql.instance(RateLimit, row) for row in limit_rows or []],
    )

"""The audit log: rows for changes made in Django admin too (with before and after), a filterable read-only
page, and rows the database itself refuses to change or delete."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from billing.budgets import set_budget
from billing.models import Budget, RateLimit
from console.audit import record
from console.models import AuditEvent
from gateway.keys import authenticate
from gateway.models import ApiKey, GroupPolicy
from tests.helpers.personas import api_key

pytestmark = pytest.mark.django_db


def one_event(staff) -> AuditEvent:
    return record(staff, "person.staff_on", "person", staff, {"is_staff": False}, {"is_staff": True})


def test_the_database_refuses_to_update_a_row(staff):
    event = one_event(staff)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(actor_name="someone-else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.after = {"is_staff": False}
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE console_auditevent SET before = NULL")
    event.refresh_from_db()
    assert (event.actor_name, event.after) == ("stella", {"is_staff": True})


def test_the_database_refuses_to_delete_a_row(staff):
    event = one_event(staff)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM console_auditevent")
    assert AuditEvent.objects.count() == 1


def test_a_row_outlives_the_people_it_names(staff, owner):
    record(staff, "person.deactivate", "person", owner, {"is_active": True}, {"is_active": False})
    owner.delete()
    staff.delete()
    event = AuditEvent.objects.get()
    assert (event.actor_name, event.target_label) == ("stella", "olivia")


def test_the_page_filters_by_who_what_target_and_date(staff_client, staff, superuser, owner, team_group):
    record(staff, "person.deactivate", "person", owner, {"is_active": True}, {"is_active": False})
    record(superuser, "group.create", "group", team_group, None, {"name": "Team"})
    AuditEvent.objects.create(
        actor_name="old", action="group.create", target_type="group", target_id="x", target_label="Old"
    )
    with connection.cursor() as cursor:  # an old row, as if written last year (inserting is allowed)
        cursor.execute(
            "INSERT INTO console_auditevent (at, actor_name, action, target_type, target_id, target_label, via)"
            " VALUES ('2025-01-05T10:00:00Z', 'ancient', 'budget.change', 'budget', 'y', 'Ancient', 'console')"
        )

    def shown(**query) -> str:
        response = staff_client.get("/console/audit/", query)
        assert response.status_code == 200
        return response.content.decode().split('id="audit"')[1]

    everything = shown()
    assert "olivia" in everything and "Team" in everything and "Ancient" in everything
    assert "olivia" not in shown(actor="root") and "Team" in shown(actor="root")
    assert "Team" not in shown(target_type="person") and "olivia" in shown(target_type="person")
    assert "Team" not in shown(target=f"person:{owner.pk}")
    assert "Ancient" in shown(until="2025-01-31") and "olivia" not in shown(until="2025-01-31")
    assert "Ancient" not in shown(since=str(dt.date.today()))


def test_reversed_or_bad_dates_are_a_form_error(staff_client):
    response = staff_client.get("/console/audit/", {"since": "2026-05-01", "until": "2026-04-01"})
    assert response.status_code == 400 and b"The start date is after the end date." in response.content
    assert staff_client.get("/console/audit/", {"since": "yesterday"}).status_code == 400


def test_the_page_offers_no_way_to_change_a_row(staff_client, staff):
    one_event(staff)
    html = staff_client.get("/console/audit/").content.decode()
    assert "<form" not in html.split('<table class="table audit"')[1]
    assert staff_client.post("/console/audit/").status_code == 405


def test_the_audit_log_has_no_django_admin_page(superuser_client):
    assert superuser_client.get("/admin/console/auditevent/").status_code == 404


# Django admin: each change there is in the log with its before and after.


def test_a_budget_changed_in_django_admin_is_recorded(superuser_client, owner):
    budget = set_budget(user=owner, amount=Decimal("5"))
    response = superuser_client.post(
        f"/admin/billing/budget/{budget.pk}/change/",
        {
            "user": owner.pk,
            "group": "",
            "limit_usd": "9",
            "period": "month",
            "alert_percent": "80",
            "periods-TOTAL_FORMS": "0",
            "periods-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get()
    assert (event.action, event.via, event.actor_name) == ("budget.change", "admin", "root")
    assert (event.before["limit_usd"], event.after["limit_usd"]) == ("5", "9")


def test_a_budget_deleted_in_django_admin_is_recorded(superuser_client, owner):
    budget = set_budget(user=owner, amount=Decimal("5"))
    response = superuser_client.post(
        "/admin/billing/budget/", {"action": "delete_selected", "_selected_action": [budget.pk], "post": "yes"}
    )
    assert response.status_code == 302 and not Budget.objects.exists()
    event = AuditEvent.objects.get()
    assert (event.action, event.before["limit_usd"], event.after) == ("budget.delete", "5", None)


def test_staff_status_and_groups_changed_in_django_admin_are_recorded(superuser_client, owner, team_group):
    response = superuser_client.post(
        f"/admin/auth/user/{owner.pk}/change/",
        {
            "username": "olivia",
            "email": "",
            "is_active": "on",
            "is_staff": "on",
            "groups": [],
            "date_joined_0": "2026-11-01",
            "date_joined_1": "10:00:00",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get()
    assert (event.action, event.target_id) == ("person.change", f"person:{owner.pk}")
    assert (event.before["is_staff"], event.after["is_staff"]) == (False, True)
    assert (event.before["groups"], event.after["groups"]) == (["Team"], [])


def test_model_access_and_rate_limits_changed_in_django_admin_are_recorded(superuser_client, team_group, catalog):
    response = superuser_client.post(
        "/admin/gateway/grouppolicy/add/",
        {"group": team_group.pk, "allowed_models": ["openai/gpt-4o"], "required_capabilities": ["tools"]},
    )
    assert response.status_code == 302
    assert GroupPolicy.objects.get().allowed_models == ["openai/gpt-4o"]
    response = superuser_client.post(
        "/admin/billing/ratelimit/add/", {"group": team_group.pk, "requests_per_minute": "5"}
    )
    assert response.status_code == 302 and RateLimit.objects.get().requests_per_minute == 5
    access, limit = AuditEvent.objects.order_by("pk")
    assert (access.action, access.target_id, access.before) == ("model_access.create", f"group:{team_group.pk}", None)
    assert access.after["allowed_models"] == ["openai/gpt-4o"] and access.after["required_capabilities"] == ["tools"]
    assert (limit.action, limit.after["requests_per_minute"]) == ("rate_limit.create", 5)


def test_a_key_revoked_in_django_admin_is_recorded(superuser_client, owner):
    secret = api_key(owner)
    key = ApiKey.objects.get()
    response = superuser_client.post("/admin/gateway/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert response.status_code == 302 and authenticate(secret) is None
    event = AuditEvent.objects.get()
    assert (event.action, event.before["revoked_at"], event.after["owner"]) == ("api_key.revoke", None, "olivia")
    assert event.after["revoked_at"] is not None


def test_the_group_policy_admin_picks_models_instead_of_json(superuser_client, team_group, catalog):
    html = superuser_client.get("/admin/gateway/grouppolicy/add/").content.decode()
    assert '<option value="openai/gpt-4o">' in html and 'type="checkbox" name="required_capabilities"' in html
    assert "<textarea" not in html


def test_rate_limits_are_named_by_their_owner_in_django_admin(superuser_client, team_group):
    RateLimit.objects.create(group=team_group, requests_per_minute=5)
    html = superuser_client.get("/admin/billing/ratelimit/").content.decode()
    assert '/change/">group Team</a>' in html


def test_a_password_set_in_django_admin_is_recorded_without_the_password(superuser_client, owner):
    response = superuser_client.post(
        f"/admin/auth/user/{owner.pk}/password/",
        {"password1": "another-long-secret-7", "password2": "another-long-secret-7", "usable_password": "true"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get()
    assert (event.action, event.after) == ("person.password_set", {"password_set": True})
    assert "another-long-secret-7" not in str(event.before) + str(event.after)

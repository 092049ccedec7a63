"""The group pages: a new group, members, model access picked from the catalog or by rules (what
gateway.policy then allows), rate limits and the group budget; every change recorded, refused input
changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from billing.models import Budget, RateLimit
from console.models import AuditEvent
from gateway.models import GroupPolicy
from gateway.policy import allowed_models

pytestmark = pytest.mark.django_db


def url(group: Group, rest: str = "") -> str:
    return f"/console/groups/{group.pk}/{rest}"


def allowed_ids(user) -> set[str]:
    return set(allowed_models(user).values_list("id", flat=True))


@pytest.mark.parametrize("side", ["owner", "teammate", "outsider"])
def test_members_change_no_group(request, side, team_group, catalog):
    client = request.getfixturevalue(f"{side}_client")
    assert client.get(url(team_group)).status_code == 403
    for rest, data in [
        ("access/rules/", {"restrict": "on"}),
        ("access/add/", {"models": ["openai/gpt-4o"]}),
        ("limits/", {"requests_per_minute": "1"}),
        ("budget/", {"amount": "1", "period": "month", "alert_percent": "80"}),
        ("members/", {"username": side}),
    ]:
        assert client.post(url(team_group, rest), data).status_code == 403
    assert client.post("/console/groups/new/", {"name": "Mine"}).status_code == 403
    assert not GroupPolicy.objects.exists() and not RateLimit.objects.exists() and not Budget.objects.exists()
    assert not Group.objects.filter(name="Mine").exists() and not AuditEvent.objects.exists()


def test_creating_a_group_and_refusing_a_duplicate(staff_client):
    response = staff_client.post("/console/groups/new/", {"name": "Research"})
    group = Group.objects.get(name="Research")
    assert response["Location"] == url(group)
    assert AuditEvent.objects.get().action == "group.create"

    response = staff_client.post("/console/groups/new/", {"name": "research"})
    assert response.status_code == 400 and b"A group with that name exists." in response.content
    assert Group.objects.filter(name__iexact="research").count() == 1


def test_members_are_added_and_removed(staff_client, team_group, owner, outsider):
    staff_client.post(url(team_group, "members/"), {"username": "oscar"})
    assert outsider.groups.filter(pk=team_group.pk).exists()
    staff_client.post(url(team_group, f"members/{owner.pk}/remove/"))
    assert not owner.groups.filter(pk=team_group.pk).exists()

    response = staff_client.post(url(team_group, "members/"), {"username": "nobody"})
    assert response.status_code == 400 and b"No active person has that username." in response.content
    events = AuditEvent.objects.order_by("pk")
    assert [e.after["members"] for e in events] == [["olivia", "oscar"], ["oscar"]]


def test_models_picked_from_the_catalog_are_what_members_may_use(staff_client, team_group, owner, catalog):
    page = staff_client.get(url(team_group), {"q": "claude"}).content.decode()
    assert "anthropic/claude-sonnet-4" in page and "openai/gpt-4o-mini" not in page

    staff_client.post(url(team_group, "access/add/"), {"models": ["anthropic/claude-sonnet-4", "openai/gpt-4o"]})

    assert allowed_ids(owner) == {"anthropic/claude-sonnet-4", "openai/gpt-4o"}
    page = staff_client.get(url(team_group)).content.decode()
    assert "Members may use <strong>2</strong> models" in page

    staff_client.post(url(team_group, "access/remove/"), {"models": ["openai/gpt-4o"]})
    assert allowed_ids(owner) == {"anthropic/claude-sonnet-4"}
    event = AuditEvent.objects.filter(action="model_access.change").latest("pk")
    assert event.before["allowed_models"] == ["anthropic/claude-sonnet-4", "openai/gpt-4o"]
    assert event.after["allowed_models"] == ["anthropic/claude-sonnet-4"]


def test_a_provider_adds_its_current_models(staff_client, team_group, owner, catalog):
    staff_client.post(url(team_group, "access/add/"), {"providers": ["anthropic"]})
    assert allowed_ids(owner) and all(model.startswith("anthropic/") for model in allowed_ids(owner))


def test_rules_allow_by_price_cap_and_capabilities(staff_client, team_group, owner, catalog):
    staff_client.post(
        url(team_group, "access/rules/"),
        {"restrict": "on", "allow_by_rule": "on", "max_price_per_million": "0.5", "required_capabilities": ["audio"]},
    )
    policy = GroupPolicy.objects.get(group=team_group)
    assert (policy.max_price_per_million, policy.required_capabilities) == (Decimal("0.5"), ["audio"])
    assert allowed_ids(owner) == {"google/gemini-2.0-flash-001"}

    staff_client.post(url(team_group, "access/rules/"), {})
    assert not GroupPolicy.objects.exists()
    assert "anthropic/claude-opus-4.1" in allowed_ids(owner)
    event = AuditEvent.objects.filter(action="model_access.change").latest("pk")
    assert event.before["required_capabilities"] == ["audio"] and event.after is None


@pytest.mark.parametrize(
    ("rest", "data", "error"),
    [
        ("access/rules/", {"restrict": "on", "max_price_per_million": "-1"}, "greater than or equal to 0"),
        ("access/rules/", {"restrict": "on", "max_price_per_million": "1e9"}, "less than or equal to 10000"),
        ("access/rules/", {"allow_by_rule": "on"}, "tick “Restrict” too"),
        ("access/rules/", {"restrict": "on", "required_capabilities": ["telepathy"]}, "Select a valid choice"),
        ("access/add/", {"models": ["acme/not-a-model"]}, "Not in the catalog: acme/not-a-model."),
        ("access/add/", {}, "Pick at least one model or provider."),
        ("access/add/", {"providers": ["acme"]}, "Select a valid choice"),
        ("limits/", {"requests_per_minute": "0"}, "greater than or equal to 1"),
        ("limits/", {"tokens_per_minute": "99999999999"}, "less than or equal to"),
        ("limits/", {"concurrent_streams": "many"}, "Enter a whole number."),
        ("budget/", {"amount": "-3", "period": "month", "alert_percent": "80"}, "greater than or equal to 0"),
        ("budget/", {"amount": "5000000", "period": "month", "alert_percent": "80"}, "less than or equal to 1000000"),
        ("budget/", {"amount": "5", "period": "year", "alert_percent": "80"}, "Select a valid choice"),
        ("budget/", {"amount": "5", "period": "month", "alert_percent": "140"}, "less than or equal to 100"),
        ("budget/", {"amount": "NaN", "period": "month", "alert_percent": "80"}, "Enter a number."),
    ],
)
def test_bad_input_is_a_form_error_and_changes_nothing(staff_client, team_group, catalog, rest, data, error):
    response = staff_client.post(url(team_group, rest), data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not GroupPolicy.objects.exists() and not RateLimit.objects.exists() and not Budget.objects.exists()
    assert not AuditEvent.objects.exists()


def test_rate_limits_and_budget_on_the_group_page(staff_client, team_group):
    staff_client.post(url(team_group, "limits/"), {"requests_per_minute": "60", "concurrent_streams": "2"})
    staff_client.post(url(team_group, "budget/"), {"amount": "25", "period": "week", "alert_percent": "90"})

    limit = RateLimit.objects.get(group=team_group)
    assert (limit.requests_per_minute, limit.tokens_per_minute, limit.concurrent_streams) == (60, None, 2)
    budget = Budget.objects.get(group=team_group)
    assert (budget.limit_usd, budget.period, budget.alert_percent) == (Decimal(25), "week", 90)
    page = staff_client.get(url(team_group)).content.decode()
    assert 'value="60"' in page and 'value="25"' in page

    staff_client.post(url(team_group, "budget/"), {"amount": "", "period": "week", "alert_percent": "90"})
    assert not Budget.objects.exists()
    assert [e.action for e in AuditEvent.objects.order_by("pk")] == [
        "rate_limit.change",
        "budget.change",
        "budget.change",
    ]
    removed = AuditEvent.objects.latest("pk")
    assert removed.before["limit_usd"] == "25" and removed.after is None


def test_saving_a_form_unchanged_records_nothing(staff_client, team_group):
    staff_client.post(url(team_group, "limits/"), {"requests_per_minute": "60"})
    staff_client.post(url(team_group, "limits/"), {"requests_per_minute": "60"})
    assert AuditEvent.objects.count() == 1


def test_the_groups_list(staff_client, team_group):
    staff_client.post(url(team_group, "budget/"), {"amount": "25", "period": "month", "alert_percent": "80"})
    html = staff_client.get("/console/groups/").content.decode()
    assert "Team" in html and "$25.00 a month" in html and "not restricted" in html

"""Web search per group: a user may search when any of their groups' policies allows it (admins and users in
no policy group as the default policy says), nobody when the workspace turns it off; `:online` is refused
for everyone. Refusals come before any hold or upstream call; the admin sets it in the policy form."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from billing.models import Hold, LedgerEntry
from gateway import metered
from gateway.models import GroupPolicy
from gateway.policy import web_search_allowed
from orweb.errors import InvalidRequest, ModelNotAllowed
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import ask, in_thread, upstream_calls

LLAMA = "meta-llama/llama-3.1-8b-instruct"
SEARCH_TOOL = {"tools": [{"type": "openrouter:web_search", "max_results": 3}]}
WEB_PLUGIN = {"plugins": [{"id": "web"}]}


def _policy(group: Group, *, search: bool) -> GroupPolicy:
    return GroupPolicy.objects.create(group=group, allowed_models=[LLAMA], allow_web_search=search)


@pytest.mark.django_db
def test_a_member_may_search_when_any_of_their_groups_allows_it(owner, team_group):
    _policy(team_group, search=False)
    assert web_search_allowed(owner) is False
    other = Group.objects.create(name="Research")
    other.user_set.add(owner)
    _policy(other, search=True)
    assert web_search_allowed(owner) is True


@pytest.mark.django_db
def test_admins_and_users_without_a_policy_follow_the_defaults(staff, owner, team_group, settings):
    _policy(Group.objects.create(name="Ops"), search=False)
    Group.objects.get(name="Ops").user_set.add(staff)
    assert web_search_allowed(staff) is True  # admins are unrestricted
    assert web_search_allowed(owner) is True  # no policy on the team: the default allows all
    settings.ORWEB_DEFAULT_ALLOW_ALL = False
    assert web_search_allowed(owner) is False
    settings.ORWEB_ALLOW_WEB_SEARCH = False
    assert web_search_allowed(staff) is False  # off for the workspace: off for everyone


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("params", [SEARCH_TOOL, WEB_PLUGIN], ids=["tool", "plugin"])
async def test_a_member_whose_groups_turn_search_off_is_refused_before_any_call(
    simulator, catalog, owner, team_group, params
):
    await in_thread(_policy)(team_group, search=False)
    with pytest.raises(ModelNotAllowed) as refused:
        await metered.complete(owner, ask("news?", model=LLAMA, params=params), source="chat")
    assert refused.value.status == 403
    assert "none of your groups' policies allows it" in str(refused.value)
    assert upstream_calls(simulator) == 0
    assert await in_thread(LedgerEntry.objects.count)() == 0
    assert await in_thread(Hold.objects.count)() == 0
    await metered.complete(owner, ask("no search", model=LLAMA), source="chat")  # the model itself is allowed
    assert upstream_calls(simulator) == 1


@pytest.mark.django_db(transaction=True)
async def test_a_member_whose_group_allows_search_searches_and_pays_for_it(simulator, catalog, owner, team_group):
    await in_thread(_policy)(team_group, search=True)
    completion = await metered.complete(owner, ask("news?", model=LLAMA, params=SEARCH_TOOL), source="chat")
    assert [a["type"] for a in completion.annotations].count("url_citation") == 3
    entry = await in_thread(LedgerEntry.objects.get)()
    assert entry.cost_details["server_tool_use_details"] == {"web_search_requests": 1}
    await in_thread(assert_ledger_matches_simulator)(simulator)


@pytest.mark.django_db(transaction=True)
async def test_the_online_variant_is_refused_with_the_tool_to_use_instead(simulator, catalog, staff):
    with pytest.raises(InvalidRequest) as refused:
        await metered.complete(staff, ask("news?", model=f"{LLAMA}:online"), source="chat")
    assert refused.value.status == 400 and "openrouter:web_search" in str(refused.value)
    assert upstream_calls(simulator) == 0


@pytest.mark.django_db
def test_the_admin_turns_search_off_in_the_group_policy_form(superuser_client, team_group, catalog):
    policy = _policy(team_group, search=True)
    url = f"/admin/gateway/grouppolicy/{policy.pk}/change/"
    assert 'name="allow_web_search"' in superuser_client.get(url).content.decode()
    form = {
        "group": team_group.pk,
        "allowed_models": [LLAMA],
        "max_price_per_million": "",
    }
    assert superuser_client.post(url, form).status_code == 302
    policy.refresh_from_db()
    assert policy.allow_web_search is False and policy.allowed_models == [LLAMA]
    assert superuser_client.post(url, {**form, "allow_web_search": "on"}).status_code == 302
    policy.refresh_from_db()
    assert policy.allow_web_search is True

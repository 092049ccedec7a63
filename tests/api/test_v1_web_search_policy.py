"""Web search on /v1 follows the caller's group policies (official openai SDK): refused with a 403 that
says why, before any hold or upstream call, for a member none of whose groups allows it; relayed and
charged what the simulator billed for a member of a group that does; `:online` refused (400) for everyone."""

from __future__ import annotations

import openai
import pytest

from billing.models import Hold, LedgerEntry
from gateway.models import GroupPolicy
from tests.api.conftest import key_of, sdk
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.metering import upstream_calls

pytestmark = pytest.mark.django_db(transaction=True)

LLAMA = "meta-llama/llama-3.1-8b-instruct"
SEARCH = {"tools": [{"type": "openrouter:web_search", "max_results": 2}]}


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def policies(team_group, outsider):
    """The owner's team may not search; the outsider's group may."""
    GroupPolicy.objects.create(group=team_group, allowed_models=[LLAMA], allow_web_search=False)
    GroupPolicy.objects.create(group=outsider.groups.get(), allowed_models=[LLAMA], allow_web_search=True)


@pytest.mark.parametrize("extra", [SEARCH, {"plugins": [{"id": "web"}]}], ids=["tool", "plugin"])
def test_a_member_whose_groups_turn_search_off_gets_a_403_before_any_call(api, simulator, policies, extra):
    with pytest.raises(openai.PermissionDeniedError) as raised:
        api.chat.completions.create(model=LLAMA, messages=ask("news?"), max_tokens=5, extra_body=extra)
    error = raised.value.response.json()["error"]
    assert error["message"] == "Web search is turned off for you: none of your groups' policies allows it."
    assert upstream_calls(simulator) == 0
    assert not LedgerEntry.objects.exists() and not Hold.objects.exists()


def test_a_member_whose_group_allows_search_gets_citations_and_pays_what_was_billed(
    live_app, catalog, simulator, policies, outsider
):
    api = sdk(live_app, key_of(outsider).secret)
    reply = api.chat.completions.create(model=LLAMA, messages=ask("news?"), max_tokens=50, extra_body=SEARCH)
    annotations = reply.choices[0].message.to_dict()["annotations"]
    citations = [a for a in annotations if a["type"] == "url_citation"]
    assert len(citations) == 2
    assert reply.usage.model_extra["server_tool_use_details"] == {"web_search_requests": 1}
    assert LedgerEntry.objects.get().user == outsider
    assert_ledger_matches_simulator(simulator)


def test_the_online_variant_is_refused_with_a_400_naming_the_tool(api, simulator):
    with pytest.raises(openai.BadRequestError) as raised:
        api.chat.completions.create(model=f"{LLAMA}:online", messages=ask("news?"), max_tokens=5)
    assert "openrouter:web_search" in raised.value.response.json()["error"]["message"]
    assert upstream_calls(simulator) == 0

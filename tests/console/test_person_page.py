"""A person's page in the console: spend over time and by model, budgets with spent + held and the
projection to the period's end, requests, error rate, median TTFT and tokens/s per model from the ledger,
their API keys (revoke, audited) and batch jobs, and never their message content."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from freezegun import freeze_time

from batches.models import BatchFile, BatchJob, BatchLine
from billing.budgets import BudgetStatus, current_period, set_budget
from billing.ledger import Outcome, settle
from billing.models import BudgetPeriod, LedgerEntry
from chat.models import Conversation, Message
from console.models import AuditEvent
from console.person import projection
from gateway.keys import authenticate, create_key

pytestmark = pytest.mark.django_db

NOW = "2026-03-11 00:00"  # 10 days into March (UTC): a tenth of 31 days is 10/31 of the month


@pytest.fixture(autouse=True)
def _now():
    with freeze_time(NOW):
        yield


def call(user, cost, *, model="m/a", status="ok", ttft=None, latency=0, tokens=0, key=None, days_ago=1):
    with freeze_time(dt.datetime(2026, 3, 11, tzinfo=dt.UTC) - dt.timedelta(days=days_ago, hours=-3)):
        return settle(
            Outcome(
                user_id=user.pk,
                source="api" if key else "chat",
                requested_model=model,
                served_model=model,
                status=status,
                cost=Decimal(cost),
                cost_source=LedgerEntry.CostSource.REPORTED,
                api_key_id=key.pk if key else None,
                completion_tokens=tokens,
                ttft_ms=ttft,
                latency_ms=latency,
            )
        )


def page_of(client, user, **params):
    response = client.get(reverse("console:person", args=[user.username]), params)
    return response, response.context.get("page")


def test_it_shows_spend_calls_and_error_rate_in_the_range(owner, teammate, staff_client):
    call(owner, "1.5")
    call(owner, "0.5", status="error")
    call(owner, "0.25", model="m/b", days_ago=3)
    call(owner, "9", days_ago=40)  # outside 30 days
    call(teammate, "7")  # someone else
    response, page = page_of(staff_client, owner)
    assert (page.total.cost, page.total.requests, page.total.errors, page.error_percent) == (
        Decimal("2.25"),
        3,
        1,
        Decimal("33.3"),
    )
    assert [(line.model, line.figures.cost, line.error_percent) for line in page.models] == [
        ("m/a", Decimal(2), Decimal("50.0")),
        ("m/b", Decimal("0.25"), Decimal(0)),
    ]
    assert [series["label"] for series in page.chart["series"]] == ["m/a", "m/b"]
    html = response.content.decode()
    assert "$2.25" in html and "33.3%" in html
    link = f"?preset=30d&amp;person={owner.username}&amp;model=m%2Fb&amp;stack=model"
    assert link in html  # each figure opens its filtered view


def test_median_ttft_and_tokens_per_second_come_from_successful_calls(owner, staff_client):
    call(owner, "0.1", ttft=100, latency=1100, tokens=50)  # 50 tokens in 1 s
    call(owner, "0.1", ttft=300, latency=2300, tokens=400)  # 200 tok/s
    call(owner, "0.1", ttft=200, latency=600, tokens=40)  # 100 tok/s
    call(owner, "0.1", ttft=9000, latency=9000, tokens=0, status="error")  # not a timing sample
    _, page = page_of(staff_client, owner)
    [line] = page.models
    assert (line.median_ttft_ms, line.median_tokens_per_second) == (200.0, 100.0)


def test_timings_are_of_the_latest_calls_only(owner, staff_client, monkeypatch):
    monkeypatch.setattr("console.person.TIMING_SAMPLE", 2)
    call(owner, "0.1", ttft=5000, latency=6000, tokens=10, days_ago=5)  # older than the sample
    call(owner, "0.1", ttft=100, latency=1100, tokens=50, days_ago=2)
    call(owner, "0.1", ttft=300, latency=1300, tokens=150, days_ago=1)
    _, page = page_of(staff_client, owner)
    assert (page.models[0].median_ttft_ms, page.models[0].median_tokens_per_second) == (200.0, 100.0)


def test_budgets_show_spent_held_and_the_projection_to_period_end(owner, team_group, staff_client):
    set_budget(user=owner, amount=Decimal("10"))
    set_budget(group=team_group, amount=Decimal("100"), period="week")
    call(owner, "2")
    BudgetPeriod.objects.filter(budget__user=owner).update(held=Decimal("0.5"))
    response, page = page_of(staff_client, owner)
    lines = {line.status.period: line for line in page.budgets}
    month = lines["month"]
    assert (month.status.spent, month.status.held, month.used) == (Decimal(2), Decimal("0.5"), Decimal("2.5"))
    assert month.projected == Decimal("6.2")  # $2 in 10 of 31 days
    assert not month.over
    html = response.content.decode()
    assert "$6.20" in html and "$0.50" in html


def test_the_projection_flags_a_budget_that_will_run_out(owner, staff_client):
    set_budget(user=owner, amount=Decimal("5"))
    call(owner, "2")
    response, page = page_of(staff_client, owner)
    [line] = page.budgets
    assert line.over and line.projected == Decimal("6.2")
    assert "(over)" in response.content.decode()


def test_a_projection_at_the_very_start_of_a_period_is_not_a_guess():
    status = BudgetStatus(1, "b", Decimal(1), Decimal(0), Decimal(0), Decimal(1), "day", dt.date(2026, 3, 11),
                          dt.date(2026, 3, 12), False)  # fmt: skip
    assert projection(status, dt.datetime(2026, 3, 11, tzinfo=dt.UTC)) is None


def test_it_lists_keys_linked_to_their_spend_and_revokes_one_with_an_audit_row(owner, staff, staff_client):
    key, secret = create_key(owner, "ci")
    create_key(owner, "laptop")
    response, page = page_of(staff_client, owner)
    assert [line.key.name for line in page.keys] == ["laptop", "ci"]
    spend = f"{reverse('console:explorer')}?preset=30d&amp;person={owner.username}&amp;key={key.pk}"
    assert spend in response.content.decode()  # a key's spend is the explorer's, filtered by it
    response = staff_client.post(reverse("console:revoke_key", args=[owner.username, key.pk]), follow=True)
    assert "Revoked" in response.content.decode()
    assert authenticate(secret) is None
    event = AuditEvent.objects.get(action="api_key.revoke")
    assert (event.actor_id, event.before["revoked_at"], event.after["revoked_at"] is not None) == (staff.pk, None, True)
    again = staff_client.post(reverse("console:revoke_key", args=[owner.username, key.pk]), follow=True)
    assert "already revoked" in again.content.decode()
    assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1


def test_each_keys_spend_in_the_range_links_to_the_explorer_filtered_by_it(owner, staff_client):
    ci, _ = create_key(owner, "ci")
    laptop, _ = create_key(owner, "laptop")
    call(owner, "0.25", key=ci)
    call(owner, "0.5", key=ci, days_ago=3)
    call(owner, "9", key=ci, days_ago=40)  # before the 30-day range
    call(owner, "1", key=laptop)
    call(owner, "7")  # no key
    response, page = page_of(staff_client, owner)
    figures = {line.key.name: (line.figures.cost, line.figures.requests) for line in page.keys}
    assert figures == {"ci": (Decimal("0.75"), 2), "laptop": (Decimal(1), 1)}
    link = f"{reverse('console:explorer')}?preset=30d&amp;person={owner.username}&amp;key={ci.pk}&amp;stack=model"
    assert f'<a href="{link}" title="This key\'s spend in the explorer">$0.75</a>' in response.content.decode()


def test_it_lists_batch_jobs_and_never_any_content(owner, staff_client):
    conversation = Conversation.objects.create(user=owner, title="SECRET-TITLE")
    Message.objects.create(conversation=conversation, role="user", content="SECRET-MESSAGE")
    source = BatchFile.objects.create(user=owner, filename="SECRET-FILE.jsonl")
    job = BatchJob.objects.create(user=owner, input_file=source, total=3, completed=2, failed=1, cost=Decimal("0.3"),
                                  status=BatchJob.Status.COMPLETED, metadata={"note": "SECRET-META"})  # fmt: skip
    BatchLine.objects.create(job=job, number=1, request={"prompt": "SECRET-PROMPT"}, response={"x": "SECRET-OUT"})
    call(owner, "0.1")
    response, page = page_of(staff_client, owner)
    assert [j.pk for j in page.jobs] == [job.pk]
    html = response.content.decode()
    assert job.pk in html and "2 / 1 / 3" in html
    assert "SECRET" not in html


def test_an_unknown_person_is_a_404_and_a_bad_range_a_form_error(owner, staff_client):
    assert staff_client.get(reverse("console:person", args=["nobody"])).status_code == 404
    response, page = page_of(staff_client, owner, start="2026-03-09", end="2026-03-01")
    assert response.status_code == 400 and page is None
    assert "The range is reversed" in response.content.decode()


def test_current_period_rows_are_not_needed_to_show_budgets(owner, staff_client):
    budget = set_budget(user=owner, amount=Decimal("3"))
    call(owner, "1")
    assert current_period(budget).spent == Decimal(1)
    _, page = page_of(staff_client, owner)
    assert page.budgets[0].status.remaining == Decimal(2)

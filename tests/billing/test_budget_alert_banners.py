"""Budget thresholds in the app: a banner for each person the budget concerns, shown on every page of theirs
until they dismiss it, and a signed webhook; each once per threshold (the alert percentage, then 100%) per period."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from billing import alerts_webhook
from billing.alerts_banners import open_banners, raise_threshold_alerts
from billing.budgets import set_budget
from billing.ledger import Outcome, settle
from billing.models import AlertBanner, BudgetAlert, LedgerEntry
from billing.tasks import budget_alerts, deliver_alert_webhook
from orweb import webhooks
from orweb.celery import app as celery_app
from tests.helpers.personas import signed_in
from tests.helpers.servers import WebhookReceiver

pytestmark = pytest.mark.django_db
SECRET = "alert-webhook-test-secret"
USAGE = reverse("account:usage")
MID_MONTH = "2026-03-18 10:00"


@pytest.fixture(autouse=True)
def _mid_month():
    with freeze_time(MID_MONTH):
        yield


def spend(user, cost: str) -> None:
    settle(
        Outcome(
            user_id=user.pk,
            source="chat",
            requested_model="m/a",
            status="ok",
            cost=Decimal(cost),
            cost_source=LedgerEntry.CostSource.REPORTED,
        )
    )


@pytest.fixture
def receiver(settings) -> Iterator[WebhookReceiver]:
    found = WebhookReceiver("/budget-hook")
    settings.ORWEB_ALERT_WEBHOOK_URL = found.url
    settings.ORWEB_ALERT_WEBHOOK_SECRET = SECRET
    settings.ORWEB_ALERT_WEBHOOK_TRIES = 4
    yield found
    found.stop()


def verified(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Orweb-Signature"], expected)


def test_each_threshold_fires_once_per_period(owner, teammate):
    set_budget(user=owner, amount=Decimal("10"), alert_percent=80)
    spend(owner, "7.99")
    assert raise_threshold_alerts() == 0
    spend(owner, "0.01")
    assert raise_threshold_alerts() == 1  # 80%
    assert raise_threshold_alerts() == 0
    spend(owner, "2")
    assert raise_threshold_alerts() == 1  # 100%
    assert raise_threshold_alerts() == 0
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [80, 100]
    assert [banner.threshold for banner in open_banners(owner)] == [100, 80]
    assert open_banners(teammate) == []
    with freeze_time("2026-04-02 10:00"):
        assert open_banners(owner) == []  # last month's alerts are over
        spend(owner, "9")
        assert raise_threshold_alerts() == 1  # a new period alerts again
        assert [banner.threshold for banner in open_banners(owner)] == [80]


def test_a_group_budget_alerts_every_active_member(owner, teammate, team_group):
    set_budget(group=team_group, amount=Decimal("1"), alert_percent=50)
    spend(owner, "0.6")
    budget_alerts()  # the periodic e-mail task raises the banners too
    assert {banner.user.username for banner in AlertBanner.objects.select_related("user")} == {"olivia", "tomas"}
    assert [(banner.threshold, banner.label) for banner in open_banners(teammate)] == [
        (50, f"the monthly budget of your group {team_group.name}")
    ]


def test_the_banner_shows_on_the_persons_pages_until_dismissed(owner, teammate):
    set_budget(user=owner, amount=Decimal("10"))
    spend(owner, "8.5")
    raise_threshold_alerts()
    client = signed_in(owner)
    page = client.get(USAGE).content.decode()
    assert 'data-testid="alert-banner"' in page
    assert "<strong>Your monthly budget</strong> has reached 80% of its limit: $8.50 of $10.00" in page
    [banner] = open_banners(owner)
    assert signed_in(teammate).post(reverse("account:dismiss_alert", args=[banner.id])).status_code == 404
    assert client.get(reverse("account:dismiss_alert", args=[banner.id])).status_code == 405
    response = client.post(reverse("account:dismiss_alert", args=[banner.id]), {"next": "https://evil.example/"})
    assert response.status_code == 302 and response.url == USAGE
    assert 'data-testid="alert-banner"' not in client.get(USAGE).content.decode()
    raise_threshold_alerts()
    assert open_banners(owner) == []  # dismissed for good: the threshold doesn't fire again


def test_the_banner_shows_once_on_every_page_of_the_person_and_dismissing_returns_there(owner, teammate):
    set_budget(user=owner, amount=Decimal("10"))
    spend(owner, "10")
    raise_threshold_alerts()
    client = signed_in(owner)
    pages = [USAGE, reverse("account:keys"), reverse("catalog:list"), reverse("batches:index")]
    for url in pages:
        page = client.get(url).content.decode()
        assert page.count('data-testid="alert-banner"') == 2, url  # 80% and 100%, once each
        assert "billing/alerts.css" in page
    assert 'data-testid="alert-banner"' not in signed_in(teammate).get(pages[1]).content.decode()
    banner = open_banners(owner)[0]
    response = client.post(reverse("account:dismiss_alert", args=[banner.id]), {"next": pages[2]})
    assert response.status_code == 302 and response.url == pages[2]
    assert client.get(pages[2]).content.decode().count('data-testid="alert-banner"') == 1


def test_dismissing_needs_a_csrf_token(owner):
    set_budget(user=owner, amount=Decimal("1"))
    spend(owner, "1")
    raise_threshold_alerts()
    [banner, _] = open_banners(owner)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(reverse("account:dismiss_alert", args=[banner.id])).status_code == 403
    assert len(open_banners(owner)) == 2


def test_the_webhook_is_signed_and_retried_with_growing_waits_until_it_answers(owner, receiver):
    receiver.statuses = [500, 503]
    set_budget(user=owner, amount=Decimal("10"))
    spend(owner, "8")
    raise_threshold_alerts()
    alert = BudgetAlert.objects.get()
    assert [alerts_webhook.deliver(alert.pk) for _ in range(3)] == [5.0, 10.0, None]
    assert alerts_webhook.deliver(alert.pk) is None  # a redelivered task sends nothing again
    assert len(receiver.received) == 3
    assert all(verified(headers, body) for headers, body in receiver.received)
    assert not verified({"X-Orweb-Signature": webhooks.sign(receiver.received[0][1], "other")}, b"")
    headers, body = receiver.received[-1]
    sent = json.loads(body)
    assert headers["X-Orweb-Delivery"] == f"alert-{alert.pk}"
    assert (sent["type"], sent["threshold_percent"], sent["spent_usd"], sent["limit_usd"]) == (
        "budget.threshold",
        80,
        "8",
        "10",
    )
    assert sent["budget"]["person"] == "olivia" and sent["period"] == {"start": "2026-03-01", "end": "2026-04-01"}
    alert.refresh_from_db()
    assert alert.webhook_delivered_at and alert.webhook_tries == 3 and alert.webhook_error == ""


def test_a_webhook_that_keeps_failing_is_given_up_after_the_last_try(owner, receiver):
    receiver.statuses = [500] * 10
    set_budget(user=owner, amount=Decimal("10"))
    spend(owner, "8")
    raise_threshold_alerts()
    alert = BudgetAlert.objects.get()
    assert [alerts_webhook.deliver(alert.pk) for _ in range(6)] == [5.0, 10.0, 20.0, None, None, None]
    assert len(receiver.received) == 4
    alert.refresh_from_db()
    assert alert.webhook_delivered_at is None and alert.webhook_error == "The webhook answered 500."


def test_the_celery_task_retries_until_delivered_once_per_threshold(
    owner, receiver, django_capture_on_commit_callbacks
):
    receiver.statuses = [502]
    set_budget(user=owner, amount=Decimal("10"))
    spend(owner, "10")
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            raise_threshold_alerts()  # 80% and 100% at once: a webhook each, enqueued after commit
        with django_capture_on_commit_callbacks(execute=True):
            raise_threshold_alerts()
        for alert in BudgetAlert.objects.all():
            deliver_alert_webhook(alert.pk)  # a redelivered task
    finally:
        celery_app.conf.task_always_eager = False
    thresholds = [json.loads(body)["threshold_percent"] for _, body in receiver.received]
    assert thresholds == [80, 80, 100]  # the 80% alert's first try got a 502 and was tried again
    assert BudgetAlert.objects.filter(webhook_delivered_at__isnull=False).count() == 2


def test_no_webhook_is_sent_without_a_secret(owner, receiver, settings):
    settings.ORWEB_ALERT_WEBHOOK_SECRET = ""
    set_budget(user=owner, amount=Decimal("10"))
    spend(owner, "9")
    raise_threshold_alerts()
    assert alerts_webhook.deliver(BudgetAlert.objects.get().pk) is None
    assert receiver.received == []

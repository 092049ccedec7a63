"""Spend anomalies: a person's or an API key's day above N times its trailing 14-day median (and above a
floor) is flagged once, listed for staff with a link to the explorer narrowed to it, and announced by a
banner on the console's pages. N comes from the environment until staff set it on the anomalies page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from billing.ledger import Outcome, settle
from billing.models import LedgerEntry
from console.anomalies import check, current_factor, flag_anomalies
from console.models import AnomalySetting, AuditEvent, SpendAnomaly
from console.tasks import flag_spend_anomalies
from gateway.keys import create_key
from tests.billing.rollups import add_usage
from tests.helpers.personas import signed_in

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 3, 18)
THREE, FLOOR = Decimal(3), Decimal("1.00")
ANOMALIES = reverse("console:anomalies")
FACTOR = reverse("console:anomaly_factor")


@pytest.fixture(autouse=True)
def _today():
    with freeze_time(f"{TODAY} 15:00"):
        yield


def usd(*amounts: str) -> list[Decimal]:
    return [Decimal(amount) for amount in amounts]


@pytest.mark.parametrize(
    ("history", "cost", "flagged"),
    [
        (usd(*["1"] * 14), "3.01", True),  # just above 3x a steady dollar a day
        (usd(*["1"] * 14), "3", False),  # exactly 3x is not above it
        (usd(*["1"] * 13, "100"), "3.5", True),  # one wild day doesn't move the median
        (usd(*["0.01"] * 14), "0.99", False),  # 99x the median, but under the floor
        ([], "1", True),  # nothing in two weeks, then a dollar: from nothing, at the floor
        (usd("5", "5", "5"), "5", True),  # 3 days of history: 11 days of nothing, median 0
        (usd(*["2"] * 7, *["0"] * 7), "3.1", True),  # even count: the median is the mean of 0 and 2
        (usd(*["2"] * 8, *["0"] * 6), "6", False),  # median 2: 6 is not above 3x
    ],
)
def test_a_day_is_an_anomaly_above_n_times_its_median_and_the_floor(history, cost, flagged):
    verdict = check(history, Decimal(cost), factor=THREE, floor=FLOOR)
    assert (verdict is not None) == flagged


def test_the_verdict_carries_the_median_it_was_judged_by():
    verdict = check(usd(*["1"] * 7, *["3"] * 7), Decimal(10), factor=THREE, floor=FLOOR)
    assert verdict is not None and (verdict.cost, verdict.median) == (Decimal(10), Decimal(2))


def _steady(user, dollars: str, days: int = 14) -> None:
    for back in range(1, days + 1):
        add_usage(TODAY - dt.timedelta(days=back), user, "m/a", cost=Decimal(dollars))


def _key_call(user, key, cost: str, when: dt.datetime) -> None:
    with freeze_time(when):
        settle(
            Outcome(
                user_id=user.pk,
                source="api",
                requested_model="m/a",
                status="ok",
                cost=Decimal(cost),
                cost_source=LedgerEntry.CostSource.REPORTED,
                api_key_id=key.pk,
            )
        )


def test_people_and_keys_are_flagged_once_a_day(owner, teammate, settings):
    settings.ORWEB_ANOMALY_FACTOR = 3.0
    _steady(owner, "1")
    add_usage(TODAY, owner, "m/a", cost=Decimal("3.50"))
    _steady(teammate, "1")
    add_usage(TODAY, teammate, "m/a", cost=Decimal("2.00"))  # with the key's $1.20: $3.20, within 3x $1.10
    key, _ = create_key(teammate, "ci")
    for back in range(1, 15):
        _key_call(teammate, key, "0.10", dt.datetime.combine(TODAY - dt.timedelta(days=back), dt.time(9), dt.UTC))
    _key_call(teammate, key, "1.20", dt.datetime.combine(TODAY, dt.time(9), dt.UTC))

    assert flag_anomalies() == 2
    assert flag_spend_anomalies() == 0  # the periodic task, again the same day: nothing new
    flagged = {(a.kind, a.user.username, a.api_key_id, a.cost, a.median) for a in SpendAnomaly.objects.all()}
    assert flagged == {
        ("person", "olivia", None, Decimal("3.5"), Decimal(1)),
        ("key", "tomas", key.pk, Decimal("1.2"), Decimal("0.1")),
    }


def test_n_is_a_setting(owner, settings):
    _steady(owner, "1")
    add_usage(TODAY, owner, "m/a", cost=Decimal("3.50"))
    settings.ORWEB_ANOMALY_FACTOR = 4.0
    assert flag_anomalies() == 0
    settings.ORWEB_ANOMALY_FACTOR = 2.0
    assert flag_anomalies() == 1


def test_staff_see_the_list_linked_to_the_explorer_and_a_banner_on_console_pages(owner, staff, settings):
    settings.ORWEB_ANOMALY_FACTOR = 3.0
    _steady(owner, "1")
    add_usage(TODAY, owner, "m/a", cost=Decimal("4"))
    client = signed_in(staff)
    assert 'data-testid="anomaly-banner"' not in client.get(reverse("console:budgets")).content.decode()
    flag_anomalies()

    page = client.get(ANOMALIES).content.decode()
    link = f"{reverse('console:explorer')}?preset=custom&amp;start={TODAY}&amp;end={TODAY}&amp;person=olivia"
    assert f'<a href="{link}">$4.00</a>' in page and "4.0×" in page
    banner = client.get(reverse("console:budgets")).content.decode()
    assert 'data-testid="anomaly-banner"' in banner and "1 spend anomaly</strong>" in banner
    with freeze_time(f"{TODAY + dt.timedelta(days=7)} 12:00"):
        assert 'data-testid="anomaly-banner"' not in client.get(reverse("console:budgets")).content.decode()


def test_only_staff_see_anomalies(owner, teammate):
    assert signed_in(owner).get(ANOMALIES).status_code == 403
    assert signed_in(teammate).get(ANOMALIES).status_code == 403
    response = signed_in(owner).post(ANOMALIES)
    assert response.status_code == 403


def test_staff_set_n_on_the_page_audit_logged_and_the_next_check_uses_it(owner, staff, settings):
    settings.ORWEB_ANOMALY_FACTOR = 3.0
    _steady(owner, "1")
    add_usage(TODAY, owner, "m/a", cost=Decimal("3.50"))
    client = signed_in(staff)
    assert 'value="3.00"' in client.get(ANOMALIES).content.decode()

    response = client.post(FACTOR, {"factor": "4"})
    assert response.status_code == 302 and response.url == ANOMALIES
    assert current_factor() == Decimal(4) and 'value="4.00"' in client.get(ANOMALIES).content.decode()
    assert flag_anomalies() == 0  # $3.50 is not above 4x $1
    event = AuditEvent.objects.get(action="setting.anomaly_factor")
    assert (event.actor_name, event.before, event.after) == ("stella", {"factor": "3"}, {"factor": "4"})

    client.post(FACTOR, {"factor": "2.5"})
    assert flag_anomalies() == 1
    anomaly = SpendAnomaly.objects.get()
    assert anomaly.factor == Decimal("2.5")
    assert AuditEvent.objects.filter(action="setting.anomaly_factor").count() == 2


@pytest.mark.parametrize("value", ["", "abc", "1", "0.5", "-3", "101", "2.555", "1e3"])
def test_a_bad_n_is_a_form_error_and_changes_nothing(staff, value):
    response = signed_in(staff).post(FACTOR, {"factor": value})
    assert response.status_code == 400
    assert 'data-testid="factor-error"' in response.content.decode()
    assert not AnomalySetting.objects.exists() and not AuditEvent.objects.exists()


def test_setting_n_is_staff_only_post_only_and_needs_a_csrf_token(owner, staff):
    assert signed_in(owner).post(FACTOR, {"factor": "5"}).status_code == 403
    assert signed_in(staff).get(FACTOR).status_code == 405
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(FACTOR, {"factor": "5"}).status_code == 403
    assert Client().post(FACTOR, {"factor": "5"}).status_code == 302  # to the sign-in page
    assert not AnomalySetting.objects.exists()

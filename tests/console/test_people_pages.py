"""The people pages: who may see them, creating a person with a one-time set-password link, deactivation
(keys stop), staff on/off, groups and a person's rate limits; refused input changes nothing."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from billing.models import RateLimit
from console.models import AuditEvent
from gateway.keys import authenticate
from tests.helpers.personas import SIDES, api_key, signed_in

pytestmark = pytest.mark.django_db

User = get_user_model()

PAGES = ["/console/people/", "/console/groups/", "/console/budgets/", "/console/audit/"]


def manage_url(user) -> str:
    return f"/console/people/{user.pk}/manage/"


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("side", SIDES)
def test_only_staff_see_the_pages(request, side, page):
    client = request.getfixturevalue(f"{side}_client")
    assert client.get(page).status_code == (200 if side == "staff" else 403)


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(page):
    response = Client().get(page)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("side", ["owner", "teammate", "outsider"])
def test_members_can_change_nobody(request, side, owner, staff):
    client = request.getfixturevalue(f"{side}_client")
    for action, data in [("active", {"value": "off"}), ("staff", {"value": "on"}), ("link", {})]:
        assert client.post(f"/console/people/{owner.pk}/{action}/", data).status_code == 403
    assert client.post("/console/people/new/", {"username": "mallory"}).status_code == 403
    owner.refresh_from_db()
    assert owner.is_active and not owner.is_staff
    assert not User.objects.filter(username="mallory").exists()
    assert not AuditEvent.objects.exists()


def test_changes_are_refused_over_get(staff_client, owner):
    assert staff_client.get(f"/console/people/{owner.pk}/active/", {"value": "off"}).status_code == 405
    owner.refresh_from_db()
    assert owner.is_active


def test_changes_need_the_csrf_token(staff, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(f"/console/people/{owner.pk}/active/", {"value": "off"}).status_code == 403
    owner.refresh_from_db()
    assert owner.is_active


def test_the_list_shows_people_with_their_groups_and_filters(staff_client, owner, outsider):
    outsider.is_active = False
    outsider.save()
    html = staff_client.get("/console/people/").content.decode()
    assert "olivia" in html and "Team" in html and "oscar" in html

    html = staff_client.get("/console/people/", {"status": "inactive"}).content.decode()
    assert "oscar" in html and "olivia" not in html
    html = staff_client.get("/console/people/", {"q": "oli"}).content.decode()
    assert "olivia" in html and "oscar" not in html


def test_the_list_comes_a_page_at_a_time_keeping_its_filters(staff_client, staff):
    get_user_model().objects.bulk_create(
        get_user_model()(username=f"member{n:03}", email=f"m{n}@example.com") for n in range(60)
    )
    first = staff_client.get("/console/people/", {"q": "member"}).content.decode()
    assert "member000" in first and "member049" in first and "member050" not in first
    assert "page 1 of 2 (60 people)" in first and 'href="?q=member&amp;page=2"' in first
    second = staff_client.get("/console/people/", {"q": "member", "page": 2}).content.decode()
    assert "member050" in second and "member059" in second and "member049" not in second


def link_in(html: str) -> str:
    return re.search(r'value="(http://testserver/console/set-password/[^"]+)"', html).group(1)


def test_creating_a_person_shows_a_set_password_link_that_works_once(staff_client, staff, team_group):
    response = staff_client.post(
        "/console/people/new/", {"username": "nina", "email": "nina@example.com", "groups": [team_group.pk]}
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]  # the link is a credential
    link = link_in(response.content.decode())
    nina = User.objects.get(username="nina")
    assert nina.is_active and not nina.is_staff and not nina.has_usable_password()
    assert list(nina.groups.all()) == [team_group]
    event = AuditEvent.objects.get(action="person.create")
    assert (event.actor_name, event.target_id, event.before) == ("stella", f"person:{nina.pk}", None)
    assert event.after["groups"] == ["Team"]

    newcomer = Client()
    form_page = newcomer.get(link, follow=True)
    assert b"Choose your password" in form_page.content
    post_to = form_page.redirect_chain[-1][0]
    done = newcomer.post(post_to, {"new_password1": "a-long-new-secret-9", "new_password2": "a-long-new-secret-9"})
    assert done.status_code == 302 and done["Location"] == "/login/"
    assert Client().login(username="nina", password="a-long-new-secret-9")

    again = Client().get(link, follow=True)
    assert b"This link no longer works" in again.content


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "olivia"}, "Someone already has that username."),
        ({"username": "has space"}, "Enter a valid username"),
        ({"username": "nina", "email": "not-an-address"}, "Enter a valid email address."),
        ({"username": "nina", "groups": ["999999"]}, "Select a valid choice."),
    ],
)
def test_a_refused_person_form_creates_nobody(staff_client, owner, data, field):
    before = User.objects.count()
    response = staff_client.post("/console/people/new/", data)
    assert response.status_code == 400
    assert field in response.content.decode()
    assert User.objects.count() == before and not AuditEvent.objects.exists()


def test_deactivating_stops_the_persons_keys_at_once_and_is_recorded(staff_client, owner):
    secret = api_key(owner)
    assert authenticate(secret) is not None

    response = staff_client.post(f"/console/people/{owner.pk}/active/", {"value": "off"})

    assert response.status_code == 302
    owner.refresh_from_db()
    assert not owner.is_active
    assert authenticate(secret) is None
    event = AuditEvent.objects.get()
    assert event.action == "person.deactivate"
    assert (event.before["is_active"], event.after["is_active"]) == (True, False)

    staff_client.post(f"/console/people/{owner.pk}/active/", {"value": "on"})
    owner.refresh_from_db()
    assert owner.is_active and authenticate(secret) is not None
    assert AuditEvent.objects.filter(action="person.activate").count() == 1


def test_staff_status_on_and_off(staff_client, owner):
    staff_client.post(f"/console/people/{owner.pk}/staff/", {"value": "on"})
    owner.refresh_from_db()
    assert owner.is_staff
    staff_client.post(f"/console/people/{owner.pk}/staff/", {"value": "off"})
    owner.refresh_from_db()
    assert not owner.is_staff
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == [
        "person.staff_on",
        "person.staff_off",
    ]


@pytest.mark.parametrize("action", ["active", "staff"])
def test_an_admin_cannot_lock_themselves_out(staff_client, staff, action):
    response = staff_client.post(f"/console/people/{staff.pk}/{action}/", {"value": "off"})
    assert response.status_code == 400 and b'data-testid="refused"' in response.content
    staff.refresh_from_db()
    assert staff.is_active and staff.is_staff and not AuditEvent.objects.exists()


def test_a_flag_needs_on_or_off(staff_client, owner):
    assert staff_client.post(f"/console/people/{owner.pk}/staff/", {"value": "maybe"}).status_code == 400
    owner.refresh_from_db()
    assert not owner.is_staff


def test_only_a_superuser_changes_a_superuser(staff_client, superuser_client, superuser, staff):
    assert staff_client.post(f"/console/people/{superuser.pk}/active/", {"value": "off"}).status_code == 403
    superuser.refresh_from_db()
    assert superuser.is_active
    assert superuser_client.post(f"/console/people/{staff.pk}/staff/", {"value": "off"}).status_code == 302
    staff.refresh_from_db()
    assert not staff.is_staff


def test_group_membership_is_set_from_the_persons_page(staff_client, owner, team_group):
    other = Group.objects.create(name="Research")
    staff_client.post(f"/console/people/{owner.pk}/groups/", {"groups": [other.pk]})
    assert list(owner.groups.all()) == [other]
    event = AuditEvent.objects.get(action="person.groups")
    assert (event.before["groups"], event.after["groups"]) == (["Team"], ["Research"])


def test_a_persons_own_rate_limits(staff_client, owner):
    staff_client.post(manage_url(owner).replace("manage", "limits"), {"requests_per_minute": "30"})
    limit = RateLimit.objects.get(user=owner)
    assert (limit.requests_per_minute, limit.tokens_per_minute) == (30, None)

    response = staff_client.post(manage_url(owner).replace("manage", "limits"), {"requests_per_minute": "-5"})
    assert response.status_code == 400
    assert RateLimit.objects.get(user=owner).requests_per_minute == 30

    staff_client.post(manage_url(owner).replace("manage", "limits"), {})
    assert not RateLimit.objects.filter(user=owner).exists()
    assert AuditEvent.objects.filter(action="rate_limit.change").count() == 2


def test_a_new_set_password_link_replaces_a_forgotten_password(staff_client, owner):
    response = staff_client.post(f"/console/people/{owner.pk}/link/")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    link = link_in(response.content.decode())
    assert AuditEvent.objects.get().action == "person.password_link"
    assert b"Choose your password" in Client().get(link, follow=True).content
    assert "token" not in str(AuditEvent.objects.get().after)


def test_the_manage_page_shows_the_persons_state(staff_client, owner):
    html = staff_client.get(manage_url(owner)).content.decode()
    assert "Manage olivia" in html and "Deactivate" in html and "Make staff" in html


def test_a_deactivated_person_cannot_get_a_link(staff_client, owner):
    owner.is_active = False
    owner.save()
    assert staff_client.post(f"/console/people/{owner.pk}/link/").status_code == 400
    assert not AuditEvent.objects.exists()


def test_a_deactivated_persons_session_ends(owner, staff_client):
    client = signed_in(owner)
    staff_client.post(f"/console/people/{owner.pk}/active/", {"value": "off"})
    assert client.get("/account/usage/").status_code == 302


def test_unknown_people_are_404(staff_client):
    assert staff_client.get("/console/people/999999/manage/").status_code == 404
    assert staff_client.post("/console/people/999999/active/", {"value": "off"}).status_code == 404


def test_the_link_is_e_mailed_when_mail_is_set_up(staff_client, mailoutbox):
    response = staff_client.post("/console/people/new/", {"username": "nina", "email": "nina@example.com"})
    assert [message.to for message in mailoutbox] == [["nina@example.com"]]
    assert link_in(response.content.decode()) in mailoutbox[0].body
    assert b"it was also e-mailed to nina@example.com" in response.content


def test_without_mail_the_link_is_only_shown(staff_client, mailoutbox, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    response = staff_client.post("/console/people/new/", {"username": "nina", "email": "nina@example.com"})
    assert not mailoutbox and b"e-mailed" not in response.content

"""Opening a transcript: staff only, by POST with a reason, recorded in the audit log before the one
conversation is shown read-only (escaped), and listed on the person's own usage page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message
from console.models import AuditEvent
from tests.helpers.personas import signed_in

pytestmark = pytest.mark.django_db

REASON = "Reported for abuse in ticket 4411"


@pytest.fixture
def conversation(owner):
    chat = Conversation.objects.create(user=owner, title="SECRET-TITLE", model="m/a")
    Message.objects.create(conversation=chat, role="user", content="<script>alert('x')</script> hello")
    Message.objects.create(conversation=chat, role="assistant", content="SECRET-REPLY\nsecond line")
    return chat


def url(user) -> str:
    return reverse("console:transcript", args=[user.username])


def test_staff_open_one_conversation_with_a_reason_and_it_is_audited_first(staff, owner, conversation, staff_client):
    response = staff_client.post(url(owner), {"conversation": conversation.pk, "reason": f"  {REASON} "})
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("max-age=0")
    html = response.content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; hello" in html and "<script>alert" not in html
    assert "SECRET-REPLY<br>second line" in html
    event = AuditEvent.objects.get(action="transcript.open")
    assert (event.actor_id, event.target_id, event.after) == (
        staff.pk,
        f"person:{owner.pk}",
        {"conversation": conversation.pk, "reason": REASON},
    )
    assert REASON in html and "stella" in html


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"reason": ""}, "Say why you need to read it"),
        ({"reason": "   "}, "Say why you need to read it"),
        ({"reason": "x" * 501}, "at most 500 characters"),
        ({"conversation": "", "reason": REASON}, "Pick a conversation."),
        ({"conversation": "abc", "reason": REASON}, "Enter a whole number."),
    ],
)
def test_a_missing_reason_or_bad_pick_opens_nothing(owner, conversation, staff_client, fields, error):
    response = staff_client.post(url(owner), {"conversation": conversation.pk, **fields})
    assert response.status_code == 400
    html = response.content.decode()
    assert error in html and "SECRET-REPLY" not in html and "hello" not in html
    assert not AuditEvent.objects.filter(action="transcript.open").exists()


def test_someone_elses_conversation_is_not_theirs_to_pick(owner, teammate, conversation, staff_client):
    response = staff_client.post(url(teammate), {"conversation": conversation.pk, "reason": REASON})
    assert response.status_code == 400
    assert "tomas has no such conversation." in response.content.decode()
    assert "SECRET-REPLY" not in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_only_staff_by_post_with_csrf(staff, owner, teammate, conversation):
    data = {"conversation": conversation.pk, "reason": REASON}
    assert signed_in(owner).post(url(owner), data).status_code == 403
    assert signed_in(teammate).post(url(owner), data).status_code == 403
    assert signed_in(staff).get(url(owner)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert strict.post(url(owner), data).status_code == 403
    assert Client().post(url(owner), data).status_code == 302  # to sign-in
    assert not AuditEvent.objects.exists()


def test_the_person_page_offers_conversations_by_number_never_by_title(owner, conversation, staff_client):
    html = staff_client.get(reverse("console:person", args=[owner.username])).content.decode()
    assert f'<option value="{conversation.pk}"' in html and "Open transcript" in html
    assert "SECRET-TITLE" not in html and "SECRET-REPLY" not in html


def test_the_person_sees_who_opened_which_conversation_when_and_why(owner, teammate, conversation, staff_client):
    usage = reverse("account:usage")
    assert 'data-testid="transcript-openings"' not in signed_in(owner).get(usage).content.decode()
    staff_client.post(url(owner), {"conversation": conversation.pk, "reason": REASON})
    html = signed_in(owner).get(usage).content.decode()
    assert 'data-testid="transcript-openings"' in html
    assert f"<strong>stella</strong> opened conversation #{conversation.pk}. Reason: “{REASON}”" in html
    assert 'data-testid="transcript-openings"' not in signed_in(teammate).get(usage).content.decode()

"""A follow-up's page at /queue/<id>/: the answer, the account context, the draft and its
sending, notes and calls, status, reassignment, closing with an outcome, the activity log,
roles and tenant isolation."""

import re
from datetime import date, timedelta

import pytest
from django.core import mail
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from accounts.models import Account, Contact
from followups import services
from followups.models import Activity, FollowUp
from responses.analysis import responses_analyze
from responses.services import response_record
from tests.accounts.factories import UsageSnapshotFactory
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

XSS = '<img src=x onerror="window.__xss=1">The export is broken'


def answer(org, email, score, comment="", when=None):
    response, _ = response_record(
        organization=org,
        channel="api",
        email=email,
        score=score,
        comment=comment,
        submitted_at=(when or now()).isoformat(),
    )
    # The worker analyses the comment too (after the follow-up opens; its themes are
    # what the queue filters on).
    responses_analyze(organization=org, response_ids=[response.pk])
    return services.followup_open_for_response(organization=org, response_id=response.pk)


@pytest.fixture
def world(org_a, alice, bob, carol):
    """Megacorp (owned by bob, renewing soon, an open ticket with a link, falling usage),
    Ann's earlier 9 and today's 3, and Pat's 8."""
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {
                    "external_id": "big",
                    "name": "Megacorp",
                    "arr": 900000,
                    "plan": "enterprise",
                    "signed_up_on": "2023-03-14",
                    "owner_email": "bob@a.example",
                    "health_score": 35,
                    "renewal_date": str(date.today() + timedelta(days=40)),
                },
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@mega.example", "name": "Ann Lee", "account_external_id": "big"},
                {
                    "email": "pat@mega.example",
                    "name": "Pat Kim",
                    "title": "CTO",
                    "account_external_id": "big",
                },
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="tickets",
            items=[
                {
                    "external_id": "T1",
                    "account_external_id": "big",
                    "subject": "Export keeps failing",
                    "status": "open",
                    "url": "https://support.example.com/tickets/T1",
                    "opened_at": (now() - timedelta(days=5)).isoformat(),
                }
            ],
        )
        account = Account.objects.get(external_id="big")
        for days in range(60):
            UsageSnapshotFactory(
                account=account,
                date=now().date() - timedelta(days=days),
                active_users=20 if days < 30 else 60,
            )
        answer(org_a, "pat@mega.example", 8, "Solid product", when=now() - timedelta(days=20))
        answer(org_a, "ann@mega.example", 9, "Great", when=now() - timedelta(days=120))
        followup = answer(org_a, "ann@mega.example", 3, XSS)
    return {"org": org_a, "followup": followup, "url": f"/queue/{followup.pk}/"}


def reload(followup) -> FollowUp:
    with scopes_disabled():
        return FollowUp.objects.select_related("assignee").get(pk=followup.pk)


def kinds(followup) -> list[str]:
    with scopes_disabled():
        return list(
            Activity.objects.filter(followup=followup)
            .order_by("created_at", "id")
            .values_list("kind", flat=True)
        )


def test_it_shows_the_answer_the_context_and_the_draft(client, world, bob):
    response = client_for(client, bob).get(world["url"])
    assert response.status_code == 200
    body = response.content.decode()
    # The answer, escaped.
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;The export is broken" in body
    assert "Bugs &amp; reliability" in body
    # The account context panel.
    assert "$900,000" in body
    assert "enterprise" in body
    assert "since 14 Mar 2023" in body
    assert "in 40 days" in body
    assert "Bob Manager" in body
    assert "health-at-risk" in body
    assert 'data-open-tickets="1"' in body
    assert 'href="https://support.example.com/tickets/T1"' in body
    assert "Falling" in body
    # NPS history and the other contact's score.
    assert body.count('data-response-id="') == 3
    assert "this answer" in body
    assert "Pat Kim" in body
    assert "CTO" in body
    # Priority reasons and the draft.
    assert "Danger zone (0–3)" in body
    assert "Score dropped from 9 to 3" in body
    assert "your score went from 9 to 3" in body
    assert "Export keeps failing" in body
    # The activity log starts with the creation.
    assert 'data-kind="created"' in body


def test_it_saves_the_edited_draft(client, world, bob):
    followup = world["followup"]
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/draft",
        {"subject": "Sorry, Ann", "body": "Hi Ann,\n\nI am on it.\n\nBob"},
        follow=True,
    )
    assert "Draft saved." in response.content.decode()
    followup = reload(followup)
    assert (followup.draft_subject, followup.draft_body) == (
        "Sorry, Ann",
        "Hi Ann,\n\nI am on it.\n\nBob",
    )
    assert followup.draft_edited
    assert kinds(followup)[-1] == "draft"


def test_it_sends_the_edited_text_from_the_assignee_and_logs_it(client, world, alice, bob):
    followup = world["followup"]
    assert followup.assignee == bob
    response = client_for(client, alice).post(
        f"/queue/{followup.pk}/send",
        {"subject": "About your 3, Ann", "body": "Hi Ann,\n\nEdited by hand.\n\nBob"},
        follow=True,
    )
    assert "Email sent to ann@mega.example." in response.content.decode()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ann@mega.example"]
    assert message.subject == "About your 3, Ann"
    assert message.body == "Hi Ann,\n\nEdited by hand.\n\nBob"
    assert message.reply_to == ["bob@a.example"]
    assert message.from_email.startswith("Bob Manager at Acme A")
    followup = reload(followup)
    assert followup.status == "waiting"
    assert followup.first_contact_at is not None
    with scopes_disabled():
        sent = Activity.objects.get(followup=followup, kind="email")
    assert sent.actor == alice
    assert sent.data["body"] == "Hi Ann,\n\nEdited by hand.\n\nBob"
    assert "Edited by hand." in response.content.decode()  # the log shows the message


def test_it_sends_what_a_browser_typed_with_plain_newlines(client, world, bob):
    followup = world["followup"]
    client_for(client, bob).post(
        f"/queue/{followup.pk}/send", {"subject": "Hi", "body": "Line one\r\nLine two\r\n"}
    )
    assert mail.outbox[0].body == "Line one\nLine two"


def test_it_shows_why_an_email_cannot_go_and_keeps_the_text(client, world, bob):
    followup = world["followup"]
    with scopes_disabled():
        Contact.objects.filter(pk=followup.contact_id).update(email=None, external_id="ann-1")
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/send", {"subject": "Hello", "body": "My careful words"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "This contact has no email address; log a call instead." in body
    assert "My careful words" in body
    assert mail.outbox == []
    assert "email" not in kinds(followup)


def test_it_refuses_to_send_an_empty_message(client, world, bob):
    followup = world["followup"]
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/send", {"subject": "Hello", "body": "   "}
    )
    assert "Write a subject and a message before sending." in response.content.decode()
    assert mail.outbox == []


@pytest.mark.parametrize(("kind", "label"), [("note", "Note logged."), ("call", "Call logged.")])
def test_it_logs_a_note_or_a_call(client, world, bob, kind, label):
    followup = world["followup"]
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/log", {"kind": kind, "message": "Spoke <b>briefly</b>"}, follow=True
    )
    body = response.content.decode()
    assert label in body
    assert "Spoke &lt;b&gt;briefly&lt;/b&gt;" in body
    assert kinds(followup)[-1] == kind
    assert (reload(followup).first_contact_at is not None) == (kind == "call")


def test_it_logs_in_place_with_htmx(client, world, bob):
    followup = world["followup"]
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/log",
        {"kind": "note", "message": "Left a voicemail"},
        headers={"HX-Request": "true", "HX-Target": "fu-activity"},
    )
    body = response.content.decode()
    assert "<html" not in body
    assert body.lstrip().startswith("<section")
    assert 'id="fu-activity"' in body
    assert "Left a voicemail" in body
    # The form comes back empty for the next note.
    assert re.search(r"<textarea[^>]*>\s*</textarea>", body)


def test_it_refreshes_the_activity_log_with_htmx(client, world, bob):
    followup = world["followup"]
    as_bob = client_for(client, bob)
    response = as_bob.get(f"/queue/{followup.pk}/activity", headers={"HX-Request": "true"})
    assert 'id="fu-activity"' in response.content.decode()
    assert "<html" not in response.content.decode()
    response = as_bob.get(f"/queue/{followup.pk}/activity")
    assert response.status_code == 302
    assert response.url == f"/queue/{followup.pk}/#activity"


def test_it_refuses_an_empty_note(client, world, bob):
    followup = world["followup"]
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/log", {"kind": "note", "message": "  "}
    )
    assert response.status_code == 200
    assert "Write what happened." in response.content.decode()
    assert kinds(followup) == ["created"]


def test_it_changes_the_status(client, world, bob):
    followup = world["followup"]
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/status", {"status": "in_progress"}, follow=True
    )
    assert "Status: In progress." in response.content.decode()
    assert reload(followup).status == "in_progress"
    assert kinds(followup)[-1] == "status"


def test_it_cannot_close_through_the_status_form(client, world, bob):
    followup = world["followup"]
    response = client_for(client, bob).post(f"/queue/{followup.pk}/status", {"status": "closed"})
    assert response.status_code == 200
    assert reload(followup).status == "new"


def test_it_reassigns_and_refuses_an_outsider(client, world, alice, bob, mallory):
    followup = world["followup"]
    as_bob = client_for(client, bob)
    response = as_bob.post(f"/queue/{followup.pk}/assign", {"assignee": str(alice.pk)}, follow=True)
    assert "Assigned to Alice Admin." in response.content.decode()
    assert reload(followup).assignee == alice
    assert kinds(followup)[-1] == "assigned"

    response = as_bob.post(f"/queue/{followup.pk}/assign", {"assignee": str(mallory.pk)})
    assert response.status_code == 200
    assert reload(followup).assignee == alice

    response = as_bob.post(f"/queue/{followup.pk}/assign", {"assignee": ""}, follow=True)
    assert "The follow-up is now unassigned." in response.content.decode()
    assert reload(followup).assignee is None


def test_it_will_not_close_without_an_outcome(client, world, bob):
    followup = world["followup"]
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/close", {"outcome": "", "notes": "done?"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="outcome-error">Choose an outcome to close the follow-up.</p>' in body
    assert "The follow-up is still open" in body
    followup = reload(followup)
    assert followup.status == "new"
    assert followup.closed_at is None
    assert "closed" not in kinds(followup)


def test_it_closes_with_an_outcome_and_notes(client, world, bob):
    followup = world["followup"]
    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/close",
        {"outcome": "resolved", "notes": "Export fixed, Ann is happy"},
        follow=True,
    )
    body = response.content.decode()
    assert "Closed: Resolved." in body
    assert "Export fixed, Ann is happy" in body
    followup = reload(followup)
    assert (followup.status, followup.outcome) == ("closed", "resolved")
    assert followup.closing_notes == "Export fixed, Ann is happy"
    assert kinds(followup)[-1] == "closed"

    response = client_for(client, bob).post(
        f"/queue/{followup.pk}/status", {"status": "in_progress"}, follow=True
    )
    assert "Reopened as In progress." in response.content.decode()
    assert reload(followup).outcome == ""


def test_it_shows_the_activity_log_in_order_with_who_did_what(client, world, bob):
    followup = world["followup"]
    as_bob = client_for(client, bob)
    as_bob.post(f"/queue/{followup.pk}/log", {"kind": "note", "message": "First note"})
    as_bob.post(f"/queue/{followup.pk}/status", {"status": "in_progress"})
    as_bob.post(f"/queue/{followup.pk}/log", {"kind": "call", "message": "Then a call"})
    body = as_bob.get(world["url"]).content.decode()
    order = re.findall(r'data-kind="(\w+)"', body)
    assert order == ["created", "note", "status", "call"]
    assert body.index("First note") < body.index("Then a call")
    assert body.count("· Bob Manager ·") == 3


def test_it_keeps_executives_out(client, world, carol):
    assert client_for(client, carol).get(world["url"]).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "", {}),
        ("get", "activity", {}),
        ("post", "draft", {"subject": "x", "body": "y"}),
        ("post", "send", {"subject": "x", "body": "y"}),
        ("post", "log", {"kind": "note", "message": "x"}),
        ("post", "status", {"status": "in_progress"}),
        ("post", "assign", {"assignee": ""}),
        ("post", "close", {"outcome": "resolved"}),
    ],
)
def test_it_answers_404_to_another_organization(client, world, mallory, method, path, data):
    followup = world["followup"]
    before = (reload(followup).__dict__.copy(), kinds(followup))
    response = getattr(client_for(client, mallory), method)(f"/queue/{followup.pk}/{path}", data)
    assert response.status_code == 404
    after = reload(followup).__dict__.copy()
    assert {k: v for k, v in after.items() if not k.startswith("_")} == {
        k: v for k, v in before[0].items() if not k.startswith("_")
    }
    assert kinds(followup) == before[1]
    assert mail.outbox == []

"""The ESP's tracking webhook: real Postmark payloads (the shapes of anymail's own tests)
posted to /anymail/postmark/tracking/ with the webhook secret's basic auth."""

import base64
import json
from datetime import timedelta

import pytest
from anymail.signals import tracking as tracking_signal
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scopes_disabled

from accounts.models import Contact
from surveys.models import EmailEvent, Invitation, InvitationState, SkipReason
from surveys.tracking import tracking_received
from tests.accounts.factories import ContactFactory
from tests.surveys.factories import InvitationFactory

SECRET = "anymail-hook:s3cret-for-tests"
MESSAGE_ID = "2706ee8a-737c-4285-b032-ccd317af53ed"


@pytest.fixture(autouse=True)
def _webhook(settings):
    # What SurveysConfig.ready() does; the same dispatch_uid makes it a no-op once it has.
    tracking_signal.connect(tracking_received, dispatch_uid="surveys.tracking_received")
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def contact(org_a):
    return ContactFactory(account__organization=org_a, email="bounce@example.com")


@pytest.fixture
def invitation(contact):
    return InvitationFactory(
        organization=contact.organization,
        programme__survey__organization=contact.organization,
        contact=contact,
        state=InvitationState.SENT,
        sent_at=now() - timedelta(minutes=5),
        message_id=MESSAGE_ID,
    )


def post_event(client, payload):
    auth = base64.b64encode(SECRET.encode()).decode()
    return client.post(
        reverse("anymail:postmark_tracking_webhook"),
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {auth}",
    )


def bounce(**changes):
    return {
        "RecordType": "Bounce",
        "ID": 901542550,
        "Type": "HardBounce",
        "TypeCode": 1,
        "ServerID": 23,
        "Name": "Hard bounce",
        "MessageID": MESSAGE_ID,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "bounce@example.com",
        "From": "sender@example.com",
        "BouncedAt": "2016-04-27T16:28:50.3963933-04:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Quick question from Acme A",
        "Content": "...",
        **changes,
    }


def spam_complaint():
    return {
        "RecordType": "SpamComplaint",
        "ID": 901542551,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "nps-survey",
        "MessageID": MESSAGE_ID,
        "ServerID": 1234,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": "bounce@example.com",
        "From": "sender@example.com",
        "BouncedAt": "2016-04-27T16:28:50.3963933-04:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Quick question from Acme A",
    }


def delivery(message_id="883953f4-6105-42a2-a16a-77a8eac79483", metadata=None):
    return {
        "RecordType": "Delivery",
        "ServerId": 23,
        "MessageID": message_id,
        "Recipient": "bounce@example.com",
        "Tag": "nps-survey",
        "Metadata": metadata or {},
        "DeliveredAt": "2014-08-01T13:28:10.2735393-04:00",
        "Details": "Test delivery webhook details",
    }


def fresh(obj):
    with scopes_disabled():
        return type(obj).objects.get(pk=obj.pk)


def test_it_marks_a_bounce_and_suppresses_the_contact(client, invitation, contact):
    planned = InvitationFactory(
        programme=invitation.programme,
        contact=contact,
        state=InvitationState.PLANNED,
        planned_for=now() + timedelta(days=20),
    )

    response = post_event(client, bounce())

    assert response.status_code == 200
    current = fresh(invitation)
    assert current.state == InvitationState.BOUNCED
    assert "unable to deliver" in current.last_error
    suppressed = fresh(contact)
    assert suppressed.suppressed_reason == "bounced"
    assert suppressed.suppressed_at is not None
    assert suppressed.suppression_note.startswith("Postmark bounced")
    later = fresh(planned)
    assert (later.state, later.skip_reason) == (InvitationState.SUPPRESSED, SkipReason.SUPPRESSED)
    with scopes_disabled():
        event = EmailEvent.objects.get(event_id="901542550")
    assert (event.organization_id, event.invitation_id) == (contact.organization_id, invitation.pk)
    assert event.event_type == "bounced"


def test_it_suppresses_the_contact_after_a_spam_complaint(client, invitation, contact):
    post_event(client, spam_complaint())

    assert fresh(contact).suppressed_reason == "complained"


def test_it_lets_a_complaint_override_an_earlier_unsubscribe(client, invitation, contact):
    with scopes_disabled():
        Contact.objects.filter(pk=contact.pk).update(suppressed_reason="unsubscribed")

    post_event(client, spam_complaint())

    assert fresh(contact).suppressed_reason == "complained"


def test_it_suppresses_after_an_unsubscribe_at_the_esp(client, invitation, contact):
    post_event(
        client,
        {
            "RecordType": "SubscriptionChange",
            "MessageID": MESSAGE_ID,
            "ServerID": 23,
            "MessageStream": "outbound",
            "ChangedAt": "2022-06-05T17:17:32Z",
            "Recipient": "bounce@example.com",
            "Origin": "Recipient",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
            "Tag": "nps-survey",
            "Metadata": {},
        },
    )

    assert fresh(contact).suppressed_reason == "unsubscribed"


def test_it_marks_delivery_finding_the_invitation_by_its_metadata(client, invitation):
    with scopes_disabled():
        Invitation.objects.filter(pk=invitation.pk).update(message_id="")
    metadata = {
        "organization_id": str(invitation.organization_id),
        "invitation_id": str(invitation.pk),
    }

    response = post_event(client, delivery(metadata=metadata))

    assert response.status_code == 200
    current = fresh(invitation)
    assert current.state == InvitationState.DELIVERED
    assert current.delivered_at is not None
    assert fresh(current.contact).suppressed_reason == ""


def test_it_marks_an_open(client, invitation):
    post_event(
        client,
        {
            "RecordType": "Open",
            "FirstOpen": True,
            "Client": {"Name": "Gmail", "Company": "Google", "Family": "Gmail"},
            "OS": {"Name": "unknown", "Company": "unknown", "Family": "unknown"},
            "Platform": "Unknown",
            "UserAgent": "Mozilla/5.0",
            "ReadSeconds": 0,
            "Geo": {},
            "MessageID": MESSAGE_ID,
            "ReceivedAt": "2016-04-27T16:21:41.2493688-04:00",
            "Recipient": "bounce@example.com",
        },
    )

    current = fresh(invitation)
    assert current.state == InvitationState.OPENED
    assert current.opened_at is not None


def test_it_never_moves_an_answered_invitation_back(client, invitation):
    with scopes_disabled():
        Invitation.objects.filter(pk=invitation.pk).update(state=InvitationState.ANSWERED)

    post_event(client, delivery(message_id=MESSAGE_ID))

    current = fresh(invitation)
    assert current.state == InvitationState.ANSWERED
    assert current.delivered_at is not None


def test_it_applies_a_duplicate_event_id_once(client, invitation, contact):
    post_event(client, bounce())
    with scopes_disabled():
        # Someone lifts the suppression; the ESP retries the same event.
        Contact.objects.filter(pk=contact.pk).update(suppressed_reason="", suppressed_at=None)
        Invitation.objects.filter(pk=invitation.pk).update(state=InvitationState.DELIVERED)

    again = post_event(client, bounce())

    assert again.status_code == 200
    assert fresh(contact).suppressed_reason == ""
    assert fresh(invitation).state == InvitationState.DELIVERED
    with scopes_disabled():
        assert EmailEvent.objects.filter(event_id="901542550").count() == 1


def test_it_dedupes_events_without_an_esp_id(client, invitation):
    post_event(client, delivery(message_id=MESSAGE_ID))
    post_event(client, delivery(message_id=MESSAGE_ID))

    with scopes_disabled():
        assert EmailEvent.objects.filter(event_type="delivered").count() == 1


def test_it_ignores_an_unknown_message_id(client, invitation, contact):
    response = post_event(client, bounce(MessageID="00000000-unknown", ID=42))

    assert response.status_code == 200
    assert fresh(invitation).state == InvitationState.SENT
    assert fresh(contact).suppressed_reason == ""
    with scopes_disabled():
        event = EmailEvent.objects.get(event_id="42")
    assert event.organization_id is None
    assert event.invitation_id is None


def test_it_ignores_metadata_naming_another_tenant(client, invitation, contact, org_b):
    forged = {"organization_id": str(org_b.pk), "invitation_id": str(invitation.pk)}

    post_event(client, bounce(MessageID="unknown-id", Metadata=forged))

    assert fresh(invitation).state == InvitationState.SENT
    assert fresh(contact).suppressed_reason == ""


def test_it_refuses_a_webhook_call_without_the_secret(client, invitation):
    response = client.post(
        reverse("anymail:postmark_tracking_webhook"),
        data=json.dumps(bounce()),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert fresh(invitation).state == InvitationState.SENT

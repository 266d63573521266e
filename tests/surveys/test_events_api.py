"""POST /api/v1/events/ (touchpoint triggers) and GET /api/v1/invitations/ (the send log)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_scopes import scopes_disabled

from surveys.models import Invitation, InvitationState, SkipReason, TouchpointEvent
from tests.accounts.factories import ContactFactory
from tests.surveys.factories import InvitationFactory, ProgrammeFactory

pytestmark = pytest.mark.django_db
EVENTS = reverse("api:event-create")
INVITATIONS = reverse("api:invitation-list")
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def world(org_a, api, api_key_a):
    api.key = api_key_a[1]
    programme = ProgrammeFactory(
        survey__organization=org_a,
        triggers=[{"event": "onboarding_completed", "delay_days": 14}],
        business_days_only=False,
    )
    contact = ContactFactory(account__organization=org_a, email="ann@customer.example")
    return programme, contact


def test_it_schedules_a_survey_after_an_events_delay(api, world):
    programme, contact = world
    with time_machine.travel(MONDAY, tick=False):
        answer = api.post(
            EVENTS,
            {"event": "onboarding_completed", "email": "Ann@Customer.example", "external_id": "e1"},
        )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["event"] == "onboarding_completed"
    assert body["contact_id"] == contact.pk
    assert "scheduled for 2026-03-16 10:00" in body["outcome"]
    with scopes_disabled():
        invitation = Invitation.objects.get()
    assert body["invitation"]["id"] == invitation.pk
    assert invitation.planned_for == MONDAY + timedelta(days=14)
    assert invitation.trigger == "onboarding_completed"


def test_it_skips_a_fatigued_contact_with_the_reason(api, world):
    _, contact = world
    with scopes_disabled():
        type(contact).objects.filter(pk=contact.pk).update(last_responded_at=MONDAY)
    with time_machine.travel(MONDAY, tick=False):
        answer = api.post(
            EVENTS,
            {"event": "onboarding_completed", "contact_external_id": contact.external_id}
            if contact.external_id
            else {"event": "onboarding_completed", "email": contact.email},
        )
    assert answer.status_code == 201
    body = answer.json()
    assert body["invitation"] is None
    assert "skipped, surveyed recently (fatigue)" in body["outcome"]
    with scopes_disabled():
        assert Invitation.objects.get().skip_reason == SkipReason.FATIGUED


def test_it_records_the_same_external_id_once(api, world):
    first = api.post(
        EVENTS, {"event": "ticket_solved", "email": "ann@customer.example", "external_id": "x-1"}
    )
    again = api.post(
        EVENTS, {"event": "ticket_solved", "email": "ann@customer.example", "external_id": "x-1"}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["outcome"] == "No active programme is triggered by it."
    with scopes_disabled():
        assert TouchpointEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "ann@customer.example"}, "event"),
        ({"event": "has spaces", "email": "ann@customer.example"}, "event"),
        ({"event": "x"}, "email"),
        ({"event": "x", "email": "not-an-email"}, "email"),
        ({"event": "x", "email": "nobody@customer.example"}, "email"),
        ({"event": "x", "contact_external_id": "nope"}, "contact_external_id"),
        ({"event": "x", "email": "ann@customer.example", "occurred_at": "soon"}, "occurred_at"),
        (
            {"event": "x", "email": "ann@customer.example", "occurred_at": "2999-01-01T00:00:00Z"},
            "occurred_at",
        ),
        (
            {"event": "x", "email": "ann@customer.example", "properties": {"a": "b\x00"}},
            "properties",
        ),
        ({"event": "x", "email": "ann@customer.example", "properties": [1]}, "properties"),
    ],
)
def test_it_answers_invalid_events_with_field_messages(api, world, payload, field):
    answer = api.post(EVENTS, payload)
    assert answer.status_code == 400, answer.content
    body = answer.json()
    assert body["error"] == "invalid", body
    assert field in body["fields"], body


def test_it_refuses_a_list_body(api, world):
    assert api.post(EVENTS, [{"event": "x"}]).status_code == 400


def test_it_answers_401_without_a_key(client, world):
    answer = client.post(EVENTS, {"event": "x"}, content_type="application/json")
    assert answer.status_code == 401
    assert client.get(INVITATIONS).status_code == 401


def test_it_keeps_org_b_from_targeting_org_a_contacts(api, world, api_key_b):
    _, contact = world
    api.key = api_key_b[1]
    answer = api.post(EVENTS, {"event": "onboarding_completed", "email": contact.email})
    assert answer.status_code == 400
    assert "email" in answer.json()["fields"]
    with scopes_disabled():
        assert not TouchpointEvent.objects.exists()
        assert not Invitation.objects.exists()


# --- The send log ----------------------------------------------------------------------------


def test_it_filters_the_invitation_list(api, world, org_a, api_key_b):
    programme, contact = world
    other = ProgrammeFactory(survey__organization=org_a)
    mine = InvitationFactory(programme=programme, contact=contact, planned_for=MONDAY)
    InvitationFactory(
        programme=other,
        state=InvitationState.SKIPPED,
        skip_reason="fatigued",
        planned_for=MONDAY - timedelta(days=30),
    )
    rows = api.get(INVITATIONS).json()["results"]
    assert len(rows) == 2
    assert rows[0].keys() >= {"id", "programme_id", "contact_email", "state", "skip_reason"}
    by_email = api.get(INVITATIONS, data={"email": "ANN@customer.example"}).json()["results"]
    assert [r["id"] for r in by_email] == [mine.pk]
    assert [
        r["id"] for r in api.get(INVITATIONS, data={"programme": programme.pk}).json()["results"]
    ] == [mine.pk]
    skipped = api.get(INVITATIONS, data={"state": "skipped"}).json()["results"]
    assert [r["skip_reason"] for r in skipped] == ["fatigued"]
    since = api.get(INVITATIONS, data={"since": (MONDAY - timedelta(days=1)).isoformat()}).json()
    assert [r["id"] for r in since["results"]] == [mine.pk]
    assert api.get(INVITATIONS, data={"state": "nonsense"}).status_code == 400
    assert api.get(INVITATIONS, data={"programme": "abc"}).status_code == 400
    assert api.get(INVITATIONS, data={"since": "yesterday"}).status_code == 400
    api.key = api_key_b[1]
    assert api.get(INVITATIONS).json()["results"] == []


def test_it_lists_invitations_in_a_constant_number_of_queries(api, world, org_a):
    programme, _ = world

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert api.get(INVITATIONS).status_code == 200
        return len(queries)

    InvitationFactory(programme=programme)
    count()  # the first call may note the key's last use
    few = count()
    for _ in range(10):
        InvitationFactory(programme=ProgrammeFactory(survey=programme.survey))
    assert count() == few

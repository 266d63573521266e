"""The official `delighted` Python client, pointed at a live server, does what an integration
written for Delighted does, and gets Delighted's answers and the client's own exceptions."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts.models import Account, Contact, ErasureRecord
from compat.models import AutopilotMembership
from followups.models import FollowUp
from insights import metrics
from responses.models import Response, ResponseNote
from surveys.models import Invitation
from tests.compat.conftest import delighted
from tests.compat.helpers import make_person, make_response

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_creates_people_with_properties_and_a_delay(dl, org_a, email_programme):
    before = int(time.time())
    person = dl.Person.create(
        email="Ann@Initech.example",
        name="Ann Lee",
        delay=3600,
        properties={"Company": "Initech", "Plan": "Growth", "Location": "Berlin"},
    )
    assert isinstance(person, delighted.Person)
    assert isinstance(person.id, str)
    assert person.email == "ann@initech.example"
    assert person.name == "Ann Lee"
    assert isinstance(person.created_at, int)
    assert person.survey_scheduled_at >= before + 3600
    with scopes_disabled():
        contact = Contact.objects.select_related("account").get(pk=int(person.id))
        invitation = Invitation.objects.get(contact=contact)
    assert contact.account.name == "Initech"
    assert contact.account.plan == "growth"
    assert contact.properties == {"Location": "Berlin"}
    assert invitation.programme_id == email_programme.pk
    assert invitation.state == "planned"
    assert int(invitation.planned_for.timestamp()) == person.survey_scheduled_at


def test_it_updates_a_person_and_only_upserts_with_send_false(dl, org_a, email_programme):
    first = dl.Person.create(email="bo@initech.example", send=False, properties={"Tier": "1"})
    again = dl.Person.create(email="bo@initech.example", name="Bo", send=False)
    assert again.id == first.id
    assert first.survey_scheduled_at is None
    with scopes_disabled():
        contact = Contact.objects.get(pk=int(first.id))
        assert not Invitation.objects.filter(contact=contact).exists()
    assert (contact.name, contact.properties) == ("Bo", {"Tier": "1"})


def test_it_lists_people_across_several_pages(dl, org_a, org_b, monkeypatch):
    emails = [f"p{n}@list.example" for n in range(7)]
    for email in emails:
        make_person(org_a, email)
    make_person(org_b, "outsider@b.example")
    urls = []
    adapter_request = dl.http_adapter.request

    def spy(method, uri, headers={}, data=None, params=None):  # noqa: B006 (the client's own)
        urls.append(uri)
        return adapter_request(method, uri, headers, data, params)

    monkeypatch.setattr(dl.http_adapter, "request", spy)
    people = list(dl.Person.list(per_page=3).auto_paging_iter())
    assert [p.email for p in people] == emails
    assert len(urls) == 3
    assert all(url.startswith("http://") and "page_info=" in url for url in urls[1:])
    assert dl.Person.all(email="p3@list.example")[0].email == "p3@list.example"


def test_it_creates_survey_responses_through_the_response_service(dl, org_a):
    person_id = make_person(org_a, "cy@initech.example")
    created = dl.SurveyResponse.create(
        person=str(person_id),
        score=2,
        comment="It keeps crashing",
        person_properties={"Plan": "Pro"},
        created_at=int(time.time()) - 60,
    )
    assert isinstance(created, delighted.SurveyResponse)
    assert created.person == str(person_id)
    assert (created.score, created.comment, created.survey_type) == (2, "It keeps crashing", "nps")
    with scopes_disabled():
        response = Response.objects.get(pk=int(created.id))
        followup = FollowUp.objects.filter(response=response).first()
    assert (response.category, response.danger_zone, response.channel) == (
        "detractor",
        True,
        "api",
    )
    assert response.properties == {"Plan": "Pro"}
    assert followup is not None, "a Delighted answer opens its follow-up like any other"


def test_it_lists_responses_with_filters_and_expand(dl, org_a, alice):
    make_person(org_a, "dee@initech.example", name="Dee")
    make_person(org_a, "eve@initech.example")
    base = now() - timedelta(days=10)
    old = make_response(org_a, "dee@initech.example", 9, submitted_at=base.isoformat())
    mid = make_response(
        org_a, "dee@initech.example", 3, submitted_at=(base + timedelta(days=2)).isoformat()
    )
    eves = make_response(
        org_a, "eve@initech.example", 7, submitted_at=(base + timedelta(days=3)).isoformat()
    )
    recent = make_response(org_a, "dee@initech.example", 10, comment="Love it")
    with scopes_disabled():
        ResponseNote.objects.create(
            organization=org_a, response=mid, body="Called back, fixed", author=alice
        )

    window = dl.SurveyResponse.all(
        since=int((base + timedelta(days=1)).timestamp()),
        person_email="dee@initech.example",
        expand=["person"],
        order="desc",
    )
    assert [r.id for r in window] == [str(recent.pk), str(mid.pk)]
    assert isinstance(window[0].person, delighted.Person)
    assert window[0].person.email == "dee@initech.example"
    # The client sends a list as a dict of params, so it carries one expand[] at a time.
    noted = dl.SurveyResponse.all(person_id=str(mid.contact_id), expand=["notes"], order="desc")
    assert [n["text"] for r in noted for n in r.notes] == ["Called back, fixed"]
    assert noted[0].notes == []
    with_note = next(r for r in noted if r.notes)
    assert with_note.id == str(mid.pk)
    assert with_note.notes[0]["user_email"] == "alice@a.example"
    plain = dl.SurveyResponse.all(per_page=2, page=2)
    assert [r.id for r in plain] == [str(eves.pk), str(recent.pk)]
    assert plain[0].person == str(eves.contact_id)
    assert old.pk not in [int(r.id) for r in window]


def test_it_updates_a_response_with_save(dl, org_a):
    make_person(org_a, "fay@initech.example")
    response = make_response(org_a, "fay@initech.example", 8, comment="Fine")
    fetched = dl.SurveyResponse.retrieve(str(response.pk), expand=["person"])
    fetched.comment = "Fine, but slow exports"
    fetched.tags = ["Exports"]
    saved = fetched.save()
    assert isinstance(saved, delighted.SurveyResponse)
    assert saved.comment == "Fine, but slow exports"
    assert saved.tags == ["exports"]
    assert isinstance(saved.person, delighted.Person)
    with scopes_disabled():
        response.refresh_from_db()
    assert (response.comment, response.tags, response.score) == (
        "Fine, but slow exports",
        ["exports"],
        8,
    )


def test_it_retrieves_metrics_that_agree_with_the_metrics_service(dl, org_a):
    for n in range(6):
        make_person(org_a, f"m{n}@metrics.example")
    day = datetime(2026, 10, 5, 12, tzinfo=UTC)
    for n, score in enumerate([10, 9, 9, 8, 3, 0]):
        make_response(
            org_a,
            f"m{n}@metrics.example",
            score,
            submitted_at=(day + timedelta(days=n)).isoformat(),
        )
    since = datetime(2026, 10, 6, tzinfo=UTC)  # leaves out the first 10
    until = datetime(2026, 10, 10, 23, 59, tzinfo=UTC)
    figures = dl.Metrics.retrieve(since=int(since.timestamp()), until=int(until.timestamp()))
    with scope(organization=org_a):
        ours = metrics.headline(org_a, metrics.Filters(since=since.date(), until=until.date()))
    assert (figures.promoter_count, figures.passive_count, figures.detractor_count) == (2, 1, 2)
    assert (figures.promoter_count, figures.passive_count, figures.detractor_count) == (
        ours.promoters,
        ours.passives,
        ours.detractors,
    )
    assert figures.response_count == ours.n == 5
    assert figures.nps == round(ours.nps) == 0
    assert figures.promoter_percent == 40.0


def test_it_unsubscribes_and_lists_unsubscribes(dl, org_a, email_programme):
    person = dl.Person.create(email="gus@initech.example")
    assert person.survey_scheduled_at is not None
    assert dl.Unsubscribe.create(person_email="gus@initech.example") == {"ok": True}
    with scopes_disabled():
        contact = Contact.objects.get(pk=int(person.id))
        states = list(Invitation.objects.filter(contact=contact).values_list("state", flat=True))
    assert contact.suppressed_reason == "unsubscribed"
    assert states == ["suppressed"]
    listed = dl.Unsubscribe.all()
    assert [(u.person_id, u.email) for u in listed] == [(person.id, "gus@initech.example")]
    assert isinstance(listed[0].unsubscribed_at, int)


def test_it_lists_bounces(dl, org_a):
    make_person(org_a, "hal@initech.example", suppressed_reason="bounced")
    make_person(org_a, "ivy@initech.example", suppressed_reason="unsubscribed")
    bounces = dl.Bounce.all()
    assert [b.email for b in bounces] == ["hal@initech.example"]
    assert isinstance(bounces[0].bounced_at, int)


def test_it_deletes_a_person_by_email_and_by_id(dl, org_a):
    first = make_person(org_a, "jo@initech.example")
    second = make_person(org_a, "kim@initech.example")
    make_response(org_a, "jo@initech.example", 4, comment="Meh")
    assert dl.Person.delete(email="jo@initech.example") == {"ok": True}
    assert dl.Person.delete(id=second) == {"ok": True}
    with scopes_disabled():
        assert not Contact.objects.filter(pk__in=[first, second]).exists()
        assert ErasureRecord.objects.filter(organization=org_a).count() == 2


def test_it_cancels_pending_survey_requests(dl, org_a, email_programme):
    person = dl.Person.create(email="lou@initech.example", delay=60)
    assert dl.SurveyRequest.delete_pending(person_email="lou@initech.example") == {"ok": True}
    with scopes_disabled():
        states = list(
            Invitation.objects.filter(contact_id=int(person.id)).values_list("state", flat=True)
        )
    assert states == ["skipped"]


def test_it_raises_the_clients_validation_error_on_422(dl, org_a):
    person_id = make_person(org_a, "max@initech.example")
    with pytest.raises(delighted.errors.ResourceValidationError) as caught:
        dl.SurveyResponse.create(person=str(person_id), score=11)
    body = caught.value.response.body
    assert caught.value.response.status_code == 422
    assert '"status":422' in body.replace(" ", "")
    assert "score" in body
    with scopes_disabled():
        assert not Response.objects.filter(organization=org_a).exists()


def test_it_raises_the_clients_authentication_error_on_401(dl, org_a):
    dl.api_key = "nps_not-a-real-key"
    dl.shared_client = None
    with pytest.raises(delighted.errors.AuthenticationError):
        dl.Person.all()


def test_it_raises_the_clients_rate_limit_error_with_retry_after(dl, org_a, slow_throttle):
    dl.Person.all()
    dl.Person.all()
    with pytest.raises(delighted.errors.TooManyRequestsError) as caught:
        dl.Person.all()
    assert isinstance(caught.value.retry_after, int)
    assert caught.value.retry_after > 0


def test_it_maps_autopilot_onto_the_email_programme(dl, org_a, email_programme):
    config = dl.AutopilotConfiguration.retrieve("email")
    assert (config.platform_id, config.active, config.frequency) == ("email", True, 90 * 86400)
    memberships = dl.AutopilotMembership.forEmail()
    added = memberships.create(person_email="ned@initech.example", properties={"Plan": "Pro"})
    assert added.person["email"] == "ned@initech.example"
    listed = list(memberships.list().auto_paging_iter())
    assert [m.person["email"] for m in listed] == ["ned@initech.example"]
    assert listed[0].next_survey_request["survey_scheduled_at"] is not None
    removed = memberships.delete(person_email="ned@initech.example")
    assert removed["person"]["email"] == "ned@initech.example"
    with scopes_disabled():
        assert not AutopilotMembership.objects.exists()
        contact = Contact.objects.get(email="ned@initech.example")
        assert Invitation.objects.get(contact=contact).state == "skipped"
    # No company named and none known: the plan stays with the person.
    assert (contact.account_id, contact.properties) == (None, {"Plan": "Pro"})


def test_it_puts_the_plan_on_the_persons_known_account(dl, org_a):
    dl.Person.create(email="oz@initech.example", send=False, properties={"Company": "Initech"})
    dl.Person.create(email="oz@initech.example", send=False, properties={"Plan": "Enterprise"})
    with scopes_disabled():
        account = Account.objects.get(organization=org_a)
        contact = Contact.objects.get(email="oz@initech.example")
    assert (account.name, account.plan, contact.account_id) == ("Initech", "enterprise", account.pk)
    assert contact.properties == {}

"""The one recording service: classification, dedupe, enrichment, events."""

import pytest
from django.core.exceptions import ValidationError
from django_scopes import scope

from accounts import services as account_services
from accounts.models import Account, Contact
from responses import events
from responses.classification import classify
from responses.models import Response, ResponseTheme
from responses.services import response_record, responses_record

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("score", "category", "danger"),
    [
        (0, "detractor", True),
        (1, "detractor", True),
        (2, "detractor", True),
        (3, "detractor", True),
        (4, "detractor", False),
        (5, "detractor", False),
        (6, "detractor", False),
        (7, "passive", False),
        (8, "passive", False),
        (9, "promoter", False),
        (10, "promoter", False),
    ],
)
def test_it_classifies_every_score(score, category, danger):
    assert classify(score) == (category, danger)


@pytest.mark.parametrize("bad", [-1, 11, 7.5, "7", None, True])
def test_it_refuses_to_classify_what_is_not_a_score(bad):
    with pytest.raises(ValueError, match="0 to 10"):
        classify(bad)


@pytest.fixture
def world(org_a):
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[{"external_id": "acc-1", "name": "Initech", "arr": 90000}],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {
                    "email": "ann@initech.example",
                    "external_id": "c-1",
                    "account_external_id": "acc-1",
                }
            ],
        )
        yield org_a


def test_it_records_classifies_and_enriches_a_response(world, django_capture_on_commit_callbacks):
    received = []
    events.response_recorded.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response, created = response_record(
                organization=world,
                channel="api",
                email="ANN@initech.example",
                score=2,
                comment="Way too expensive and the app keeps crashing. Really disappointed.",
            )
    finally:
        events.response_recorded.disconnect(dispatch_uid="t")
    assert created
    response.refresh_from_db()
    assert (response.category, response.danger_zone, response.has_comment) == (
        "detractor",
        True,
        True,
    )
    assert response.account.external_id == "acc-1"
    assert response.themes == ["bugs", "pricing"]
    assert response.sentiment < 0
    assert set(ResponseTheme.objects.values_list("theme", flat=True)) == {"bugs", "pricing"}
    assert Contact.objects.get().last_responded_at == response.submitted_at
    assert Account.objects.get().last_score == 2
    assert received[0]["created_ids"] == [response.pk]


def test_it_updates_by_external_id_and_reclassifies(world):
    first, created = response_record(
        organization=world, channel="api", contact_external_id="c-1", score=3, external_id="x-1"
    )
    second, created_again = response_record(
        organization=world, channel="api", contact_external_id="c-1", score=9, external_id="x-1"
    )
    assert (created, created_again) == (True, False)
    assert first.pk == second.pk
    second.refresh_from_db()
    assert (second.score, second.category, second.danger_zone) == (9, "promoter", False)
    assert Response.objects.count() == 1


def test_it_reports_field_errors_per_item(world):
    report = responses_record(
        organization=world,
        channel="api",
        items=[
            {"email": "ann@initech.example", "score": 8},
            {"email": "ann@initech.example", "score": 11},
            {"email": "ann@initech.example", "score": 7.5},
            {"email": "ann@initech.example"},
            {"email": "nobody@x.example", "score": 5},
            {"score": 5},
            {"email": "ann@initech.example", "score": 5, "mood": "grumpy"},
        ],
    )
    statuses = [r.status for r in report.results]
    assert statuses == ["created"] + ["error"] * 6
    errors = [r.errors for r in report.results]
    assert "from 0 to 10" in errors[1]["score"][0]
    assert "whole number" in errors[2]["score"][0]
    assert "required" in errors[3]["score"][0]
    assert "No contact has the email" in errors[4]["email"][0]
    assert "create_missing" in errors[4]["email"][0]
    assert "Identify the person" in errors[5]["email"][0]
    assert "Unknown field" in errors[6]["mood"][0]
    assert Response.objects.count() == 1


def test_it_creates_missing_contacts_and_accounts_when_asked(world):
    response, _ = response_record(
        organization=world,
        channel="api",
        email="new@globex.example",
        contact_name="Nia New",
        account_external_id="acc-new",
        account_name="Globex",
        score=10,
        create_missing=True,
    )
    assert response.contact.name == "Nia New"
    assert response.account.name == "Globex"


def test_it_refuses_a_single_invalid_response_with_field_messages(world):
    with pytest.raises(ValidationError) as caught:
        response_record(organization=world, channel="api", email="ann@initech.example", score=-1)
    assert "score" in caught.value.message_dict

"""A response's survey_id and invitation_id are checked against the organization: the
surveys app's checker (responses.references), one query per table per batch, none for a
batch that names neither."""

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from responses import references
from responses.models import Response
from responses.services import responses_record
from surveys import selectors
from tests.accounts.factories import AccountFactory, ContactFactory
from tests.surveys.factories import InvitationFactory, ProgrammeFactory, SurveyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(org_a, org_b):
    initech = AccountFactory(organization=org_a, external_id="acc-1", name="Initech")
    ann = ContactFactory(account=initech, email="ann@initech.example", external_id="c-1")
    ben = ContactFactory(account=initech, email="ben@initech.example", external_id="c-2")
    survey = SurveyFactory(organization=org_a)
    other_survey = SurveyFactory(organization=org_a)
    programme = ProgrammeFactory(survey=survey)
    theirs = SurveyFactory(organization=org_b)
    return SimpleNamespace(
        ann=ann,
        ben=ben,
        survey=survey,
        other_survey=other_survey,
        invitation=InvitationFactory(programme=programme, contact=ann),
        bens_invitation=InvitationFactory(programme=programme, contact=ben),
        their_survey=theirs,
        their_invitation=InvitationFactory(programme=ProgrammeFactory(survey=theirs)),
    )


def record(org, *items):
    with scope(organization=org):
        return responses_record(organization=org, items=list(items), channel="api").results


def saved(org) -> list[Response]:
    with scopes_disabled():
        return list(Response.objects.filter(organization=org).order_by("pk"))


@pytest.fixture
def as_a(api, api_key_a):
    api.key = api_key_a[1]
    return api


def test_it_refuses_another_organizations_survey_and_one_that_does_not_exist(org_a, world):
    theirs, missing = world.their_survey.pk, world.their_survey.pk + 1000
    [their_result] = record(
        org_a, {"email": "ann@initech.example", "score": 9, "survey_id": theirs}
    )
    [missing_result] = record(
        org_a, {"email": "ann@initech.example", "score": 9, "survey_id": missing}
    )
    assert their_result.status == missing_result.status == "error"
    assert their_result.errors == {"survey_id": [f"No survey has the id {theirs}."]}
    assert missing_result.errors == {"survey_id": [f"No survey has the id {missing}."]}
    assert saved(org_a) == []


def test_it_saves_an_answer_to_one_of_the_organizations_surveys(org_a, world):
    [result] = record(
        org_a, {"email": "ann@initech.example", "score": 9, "survey_id": world.survey.pk}
    )
    assert result.status == "created"
    assert [r.survey_id for r in saved(org_a)] == [world.survey.pk]


@pytest.mark.parametrize("which", ["unknown", "another organization's"])
def test_it_refuses_an_invitation_it_does_not_know(org_a, world, which):
    invitation_id = (
        world.their_invitation.pk if which != "unknown" else world.their_invitation.pk + 1000
    )
    [result] = record(
        org_a, {"email": "ann@initech.example", "score": 9, "invitation_id": invitation_id}
    )
    assert result.status == "error"
    assert result.errors == {"invitation_id": [f"No invitation has the id {invitation_id}."]}
    assert saved(org_a) == []


def test_it_refuses_an_invitation_sent_to_another_contact(org_a, world):
    [result] = record(
        org_a,
        {"email": "ann@initech.example", "score": 9, "invitation_id": world.bens_invitation.pk},
    )
    assert result.status == "error"
    assert "sent to another contact" in result.errors["invitation_id"][0]
    assert saved(org_a) == []


def test_it_updates_an_answer_that_repeats_its_ids_after_its_invitation_is_deleted(org_a, world):
    invitation_id = world.invitation.pk
    [first] = record(
        org_a, {"contact_external_id": "c-1", "score": 3, "invitation_id": invitation_id}
    )
    with scopes_disabled():
        world.invitation.delete()  # the answer keeps the ids

    [again] = record(
        org_a, {"contact_external_id": "c-1", "score": 8, "invitation_id": invitation_id}
    )

    assert (again.status, again.response.pk) == ("updated", first.response.pk)
    [response] = saved(org_a)
    assert (response.score, response.invitation_id) == (8, invitation_id)


def test_it_refuses_another_contact_answering_an_answered_invitation(org_a, world):
    record(org_a, {"contact_external_id": "c-1", "score": 3, "invitation_id": world.invitation.pk})

    [result] = record(
        org_a, {"contact_external_id": "c-2", "score": 10, "invitation_id": world.invitation.pk}
    )

    assert result.status == "error"
    assert "sent to another contact" in result.errors["invitation_id"][0]
    [response] = saved(org_a)
    assert (response.contact_id, response.score) == (world.ann.pk, 3)


def test_it_saves_an_answer_to_the_contacts_own_invitation_with_the_invitations_survey(
    org_a, world
):
    [result] = record(
        org_a, {"contact_external_id": "c-1", "score": 3, "invitation_id": world.invitation.pk}
    )
    assert result.status == "created"
    assert (result.response.invitation_id, result.response.survey_id) == (
        world.invitation.pk,
        world.survey.pk,
    )
    [response] = saved(org_a)
    assert (response.invitation_id, response.survey_id, response.contact_id) == (
        world.invitation.pk,
        world.survey.pk,
        world.ann.pk,
    )


def test_it_saves_an_answer_naming_the_invitation_and_its_own_survey(org_a, world):
    item = {"email": "ann@initech.example", "score": 3, "survey_id": world.survey.pk}
    [result] = record(org_a, {**item, "invitation_id": world.invitation.pk})
    assert result.status == "created"
    assert [(r.invitation_id, r.survey_id) for r in saved(org_a)] == [
        (world.invitation.pk, world.survey.pk)
    ]


def test_it_refuses_a_survey_that_is_not_the_invitations(org_a, world):
    item = {"email": "ann@initech.example", "score": 3, "invitation_id": world.invitation.pk}
    [other] = record(org_a, {**item, "survey_id": world.other_survey.pk})
    [theirs] = record(org_a, {**item, "survey_id": world.their_survey.pk})
    assert other.errors == {
        "survey_id": [
            f"Invitation {world.invitation.pk} is for survey {world.survey.pk}, "
            f"not survey {world.other_survey.pk}."
        ]
    }
    assert theirs.errors == {"survey_id": [f"No survey has the id {world.their_survey.pk}."]}
    assert saved(org_a) == []


def test_it_saves_the_good_items_of_a_bulk_and_reports_the_bad_ones_by_index(as_a, org_a, world):
    ann = {"email": "ann@initech.example"}
    items = [
        {**ann, "score": 9},
        {**ann, "score": 8, "survey_id": world.their_survey.pk},
        {**ann, "score": 7, "invitation_id": world.invitation.pk},
        {**ann, "score": 6, "invitation_id": world.bens_invitation.pk},
        {**ann, "score": 5, "survey_id": world.other_survey.pk},
        {**ann, "score": 4, "invitation_id": 10**12},
    ]
    response = as_a.post(reverse("api:response-bulk"), {"items": items})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["errors"]) == (3, 3)
    statuses = [(r["index"], r["status"], sorted(r.get("errors", {}))) for r in body["results"]]
    assert statuses == [
        (0, "created", []),
        (1, "error", ["survey_id"]),
        (2, "created", []),
        (3, "error", ["invitation_id"]),
        (4, "created", []),
        (5, "error", ["invitation_id"]),
    ]
    assert [(r.score, r.survey_id, r.invitation_id) for r in saved(org_a)] == [
        (9, None, None),
        (7, world.survey.pk, world.invitation.pk),
        (5, world.other_survey.pk, None),
    ]


@pytest.mark.parametrize(
    ("field", "fragment"),
    [("survey_id", "No survey has the id"), ("invitation_id", "No invitation has the id")],
)
def test_it_answers_400_with_the_field_message_to_one_answer(as_a, org_a, world, field, fragment):
    their_id = {"survey_id": world.their_survey.pk, "invitation_id": world.their_invitation.pk}
    response = as_a.post(
        reverse("api:response-list"),
        {"email": "ann@initech.example", "score": 9, field: their_id[field]},
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert body["fields"][field] == [f"{fragment} {their_id[field]}."]
    assert saved(org_a) == []


def test_it_answers_400_to_one_answer_with_another_contacts_invitation(as_a, org_a, world):
    response = as_a.post(
        reverse("api:response-list"),
        {"email": "ann@initech.example", "score": 9, "invitation_id": world.bens_invitation.pk},
    )
    assert response.status_code == 400, response.content
    assert "sent to another contact" in response.json()["fields"]["invitation_id"][0]


def _queries(org, items) -> int:
    with scope(organization=org), CaptureQueriesContext(connection) as captured:
        results = responses_record(organization=org, items=items, channel="api").results
    assert {r.status for r in results} == {"created"}
    return len(captured)


def test_it_adds_no_query_to_a_bulk_that_names_no_survey_or_invitation(org_a, world, monkeypatch):
    items = [{"email": "ann@initech.example", "score": n % 11} for n in range(1000)]
    checked = _queries(org_a, items)
    monkeypatch.setattr(references, "_checker", None)  # responses without surveys
    assert _queries(org_a, items) == checked


def test_it_checks_a_batch_in_one_query_per_table(org_a, world):
    ann = {"email": "ann@initech.example", "score": 9}
    surveys = [world.survey.pk, world.other_survey.pk]
    for size in (60, 1000):
        plain = _queries(org_a, [ann] * size)
        named = [{**ann, "survey_id": surveys[i % 2]} for i in range(size)]
        assert _queries(org_a, named) == plain + 1  # the surveys
    answered = {**ann, "invitation_id": world.invitation.pk}
    # The invitations, the surveys, and (as before) the responses that answered them already.
    assert _queries(org_a, [answered, *named[1:]]) == plain + 3


def test_it_saves_the_ids_as_sent_when_no_app_checks_them(org_a, world, monkeypatch):
    monkeypatch.setattr(references, "_checker", None)
    [result] = record(org_a, {"email": "ann@initech.example", "score": 9, "survey_id": 10**12})
    assert result.status == "created"
    assert [r.survey_id for r in saved(org_a)] == [10**12]


def test_it_registers_the_surveys_checker_once():
    assert references._checker is selectors.response_references_check
    references.references_checker_register(selectors.response_references_check)  # again: fine
    with pytest.raises(RuntimeError, match="registered already"):
        references.references_checker_register(lambda **kwargs: None)

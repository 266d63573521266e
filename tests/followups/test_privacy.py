"""GDPR: erasing a contact drops what responses/ and followups/ hold about the person, and
the export includes it."""

import pytest
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from followups import services
from followups.models import Activity, FollowUp
from responses.analysis import responses_analyze
from responses.models import Response, ResponseNote, ResponseTheme
from responses.services import response_record
from tests.accounts.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pats_answer(org_a, bob):
    account = AccountFactory(organization=org_a, name="Initech", owner=bob)
    pat = ContactFactory(organization=org_a, account=account, email="pat@initech.example")
    other = ContactFactory(organization=org_a, account=account, email="sam@initech.example")
    with scope(organization=org_a):
        response, _ = response_record(
            organization=org_a,
            channel="api",
            email=pat.email,
            score=3,
            comment="Pat here: the pricing is too high and support never answers",
            tags=["vip"],
            properties={"plan_note": "Pat's own words"},
        )
        kept, _ = response_record(
            organization=org_a, channel="api", email=other.email, score=4, comment="Sam's view"
        )
        responses_analyze(organization=org_a, response_ids=[response.pk, kept.pk])
        ResponseNote.objects.create(organization=org_a, response=response, body="Called Pat")
        followup = services.followup_open_for_response(organization=org_a, response_id=response.pk)
        services.followup_open_for_response(organization=org_a, response_id=kept.pk)
    return {"pat": pat, "response": response, "kept": kept, "followup": followup}


def test_it_exports_the_persons_answers_and_follow_ups(api, api_key_a, pats_answer):
    api.key = api_key_a[1]
    body = api.get(reverse("api:contact-export", args=[pats_answer["pat"].pk])).json()
    assert [r["comment"] for r in body["responses"]] == [pats_answer["response"].comment]
    assert body["responses"][0]["notes"][0]["body"] == "Called Pat"
    assert [f["id"] for f in body["followups"]] == [pats_answer["followup"].pk]
    assert body["followups"][0]["draft_body"]


def test_it_erases_the_persons_words_from_answers_and_follow_ups(api, api_key_a, pats_answer):
    api.key = api_key_a[1]
    with scopes_disabled():
        assert FollowUp.objects.get(pk=pats_answer["followup"].pk).draft_body
        assert ResponseTheme.objects.filter(response=pats_answer["response"]).exists()
    reply = api.delete(reverse("api:contact-detail", args=[pats_answer["pat"].pk]))
    assert reply.status_code == 204
    with scopes_disabled():
        response = Response.objects.get(pk=pats_answer["response"].pk)
        assert (response.contact_id, response.comment, response.tags) == (None, "", [])
        assert (response.properties, response.themes, response.sentiment) == ({}, [], None)
        assert (response.score, response.category) == (3, "detractor")  # the figures stay
        assert not ResponseNote.objects.filter(response=response).exists()
        assert not ResponseTheme.objects.filter(response=response).exists()
        followup = FollowUp.objects.get(pk=pats_answer["followup"].pk)
        assert (followup.draft_subject, followup.draft_body, followup.closing_notes) == (
            "",
            "",
            "",
        )
        assert not Activity.objects.filter(followup=followup).exclude(message="").exists()
        # Someone else's answer and follow-up are untouched.
        kept = Response.objects.get(pk=pats_answer["kept"].pk)
        assert kept.comment == "Sam's view"
        assert FollowUp.objects.get(response=kept).draft_body

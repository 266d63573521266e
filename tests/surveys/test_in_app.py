"""The in-app widget's endpoints: identity verification, due or not (the one eligibility
rule), answers through the ingestion service, dismissals that count toward fatigue, CORS."""

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scopes_disabled

from responses.models import Response
from surveys import in_app, services
from surveys.models import Invitation, InvitationState
from tests.accounts.factories import ContactFactory
from tests.surveys.factories import ProgrammeFactory

pytestmark = pytest.mark.django_db
CONFIG = reverse("public:in_app_config")
ANSWER = reverse("public:in_app_answer")
DISMISS = reverse("public:in_app_dismiss")


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()


@pytest.fixture
def world(org_a):
    with scopes_disabled():
        keys = services.survey_settings_for(org_a)
    programme = ProgrammeFactory(
        survey__organization=org_a, channel_email=False, channel_in_app=True
    )
    contact = ContactFactory(account__organization=org_a, email="ann@customer.example", locale="de")
    return keys, programme, contact


def config(client, keys, email="ann@customer.example", signature=None):
    signature = signature or in_app.signature_for(keys.identity_secret, email)
    return client.get(CONFIG, {"key": keys.publishable_key, "email": email, "signature": signature})


def post(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


def test_it_asks_a_due_contact_in_their_language_with_a_token(client, world):
    keys, programme, contact = world
    answer = config(client, keys)
    assert answer.status_code == 200
    body = answer.json()
    assert body["due"] is True
    assert body["token"]
    assert body["survey"]["question"].startswith("Wie wahrscheinlich")
    assert set(body["survey"]["thanks"]) == {"detractor", "passive", "promoter"}
    assert body["survey"]["brand_color"] == programme.survey.brand_color
    assert answer["Access-Control-Allow-Origin"] == "*"
    assert not answer.cookies


def test_it_does_not_ask_a_fatigued_contact(client, world):
    keys, _, contact = world
    with scopes_disabled():
        type(contact).objects.filter(pk=contact.pk).update(
            last_surveyed_at=now() - timedelta(days=3)
        )
    body = config(client, keys).json()
    assert body == {"due": False, "survey": None, "token": None}


def test_it_asks_no_one_without_an_in_app_programme(client, world):
    keys, programme, _ = world
    with scopes_disabled():
        type(programme).objects.filter(pk=programme.pk).update(channel_in_app=False)
    assert config(client, keys).json()["due"] is False


def test_it_refuses_a_wrong_signature_unknown_key_or_contact_with_json(client, world):
    keys, _, _ = world
    bad = config(client, keys, signature="0" * 64)
    assert bad.status_code == 403
    assert bad.json()["error"] == "bad_signature"
    # A signature for another email does not work for this one.
    other = in_app.signature_for(keys.identity_secret, "eve@customer.example")
    assert config(client, keys, signature=other).status_code == 403
    unknown_key = client.get(CONFIG, {"key": "pk_nope", "email": "a@b.c", "signature": "ab"})
    assert unknown_key.status_code == 403
    assert unknown_key.json()["error"] == "unknown_key"
    nobody = config(client, keys, email="nobody@customer.example")
    assert nobody.status_code == 404
    assert nobody.json()["error"] == "unknown_contact"
    assert client.get(CONFIG).status_code == 400
    nul = client.get(CONFIG, {"key": "pk_\x00", "email": "a\x00@b.c", "signature": "ab"})
    assert nul.status_code == 400


def test_it_makes_one_response_and_updates_it_when_answered_again(client, world):
    keys, programme, contact = world
    token = config(client, keys).json()["token"]
    first = post(client, ANSWER, {"token": token, "score": 3})
    assert first.status_code == 200, first.content
    assert first.json()["thanks"].startswith("Danke")
    second = post(client, ANSWER, {"token": token, "score": 9, "comment": "Super"})
    assert second.status_code == 200
    with scopes_disabled():
        response = Response.objects.get()
        assert (response.score, response.comment, response.channel) == (9, "Super", "in_app")
        assert response.contact_id == contact.pk
        assert response.survey_id == programme.survey_id
        invitation = Invitation.objects.get()
        assert invitation.channel == "in_app"
        assert invitation.state == InvitationState.ANSWERED
        assert invitation.response_id == response.pk
        assert response.invitation_id == invitation.pk
    # Answered: not due again (fatigue).
    assert config(client, keys).json()["due"] is False


def test_it_counts_a_dismissal_toward_fatigue(client, world):
    keys, _, contact = world
    token = config(client, keys).json()["token"]
    answer = post(client, DISMISS, {"token": token})
    assert answer.status_code == 200
    assert answer.json() == {"dismissed": True}
    post(client, DISMISS, {"token": token})
    with scopes_disabled():
        invitation = Invitation.objects.get()
        assert invitation.state == InvitationState.SKIPPED
        assert invitation.sent_at
        contact.refresh_from_db()
        assert contact.last_surveyed_at is not None
        assert not Response.objects.exists()
    assert config(client, keys).json()["due"] is False


def test_it_refuses_bad_tokens_and_scores(client, world):
    keys, _, _ = world
    token = config(client, keys).json()["token"]
    assert post(client, ANSWER, {"token": token + "x", "score": 5}).status_code == 403
    assert post(client, ANSWER, {"token": token, "score": 11}).status_code == 400
    assert post(client, ANSWER, {"token": token, "score": True}).status_code == 400
    assert client.post(ANSWER, "not json", content_type="application/json").status_code == 400
    assert client.get(ANSWER).status_code == 405
    with scopes_disabled():
        assert not Response.objects.exists()


def test_it_answers_the_cors_preflight(client):
    for url in (CONFIG, ANSWER, DISMISS):
        answer = client.options(url, headers={"Origin": "https://app.customer.example"})
        assert answer.status_code == 204
        assert answer["Access-Control-Allow-Origin"] == "*"
        assert "POST" in answer["Access-Control-Allow-Methods"]
        assert answer["Access-Control-Allow-Headers"] == "Content-Type"


def test_it_rate_limits_per_key_and_address(client, world, monkeypatch):
    keys, _, _ = world
    monkeypatch.setattr(in_app, "RATE_LIMIT", 3)
    assert [config(client, keys).status_code for _ in range(3)] == [200] * 3
    limited = config(client, keys)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert limited["Access-Control-Allow-Origin"] == "*"
    # Another address has its own allowance.
    other = client.get(
        CONFIG,
        {
            "key": keys.publishable_key,
            "email": "ann@customer.example",
            "signature": in_app.signature_for(keys.identity_secret, "ann@customer.example"),
        },
        REMOTE_ADDR="10.9.9.9",
    )
    assert other.status_code == 200

"""The respondent's pages: /r/<token>/ (answer), /u/<token>/ (unsubscribe), /s/<public_id>/
(shareable link). No sign-in, no cookies, no JavaScript; a bad link never a 500."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scopes_disabled

from accounts.models import Contact
from responses.models import Response, WebhookDelivery, WebhookEndpoint
from surveys import public_views, tokens
from surveys.models import Invitation, InvitationState, SkipReason
from tests.accounts.factories import ContactFactory
from tests.surveys.factories import InvitationFactory, SurveyFactory


@pytest.fixture
def survey(org_a):
    return SurveyFactory(organization=org_a, brand_color="#0E7C66")


@pytest.fixture
def contact(org_a):
    return ContactFactory(
        account__organization=org_a, name="Ann Example", email="ann@customer.example"
    )


@pytest.fixture
def invitation(survey, contact):
    return InvitationFactory(
        programme__survey=survey,
        contact=contact,
        state=InvitationState.SENT,
        sent_at=now() - timedelta(hours=1),
    )


@pytest.fixture
def cookieless():
    """A mail client or a browser with nothing: no session, no CSRF cookie, checks on."""
    return Client(enforce_csrf_checks=True)


def respond_url(invitation, score=None):
    url = reverse("public:respond", args=[tokens.invitation_token(invitation)])
    return url if score is None else f"{url}?score={score}"


def unsubscribe_url(invitation):
    token = tokens.invitation_token(invitation, salt=tokens.UNSUBSCRIBE_SALT)
    return reverse("public:unsubscribe", args=[token])


def responses_of(organization):
    with scopes_disabled():
        return list(Response.objects.filter(organization=organization))


def fresh(invitation):
    with scopes_disabled():
        return Invitation.objects.select_related("contact").get(pk=invitation.pk)


def state_of(invitation):
    """Everything a respondent's request may change."""
    current = fresh(invitation)
    with scopes_disabled():
        return (
            current.state,
            current.opened_at,
            current.answered_at,
            current.response_id,
            current.contact.suppressed_reason,
            Response.objects.filter(organization_id=invitation.organization_id).count(),
            Contact.objects.filter(organization_id=invitation.organization_id).count(),
        )


def body(response) -> str:
    return response.content.decode()


# --- /r/<token>/ ---------------------------------------------------------------------------


def test_it_records_the_score_from_the_emails_one_click_link(cookieless, invitation, org_a):
    response = cookieless.get(respond_url(invitation, 3))

    assert response.status_code == 200
    [answer] = responses_of(org_a)
    assert (answer.score, answer.category, answer.channel) == (3, "detractor", "email")
    assert answer.invitation_id == invitation.pk
    assert answer.survey_id == invitation.survey_id
    assert answer.contact_id == invitation.contact_id
    current = fresh(invitation)
    assert current.state == InvitationState.ANSWERED
    assert current.response_id == answer.pk
    assert current.opened_at is not None
    assert current.answered_at is not None
    page = body(response)
    assert "We&#x27;re sorry to hear that. What should we do better?" in page
    assert '<textarea id="comment" name="comment"' in page
    assert '<html lang="en">' in page
    assert "topbar" not in page  # no app shell for respondents


def test_it_updates_one_response_when_the_score_changes_and_a_comment_comes(
    cookieless, invitation, org_a
):
    cookieless.get(respond_url(invitation, 3))
    cookieless.get(respond_url(invitation, 4))  # clicked another number in the email

    response = cookieless.post(
        respond_url(invitation), {"score": "9", "comment": "Fast support, fair price."}
    )

    assert response.status_code == 303
    assert response["Location"].endswith("?thanks=1")
    [answer] = responses_of(org_a)
    assert (answer.score, answer.category) == (9, "promoter")
    assert answer.comment == "Fast support, fair price."
    thanks = cookieless.get(response["Location"])
    assert thanks.status_code == 200
    assert "Thank you! We&#x27;re thrilled you&#x27;d recommend us." in body(thanks)


def test_it_keeps_the_score_when_only_a_comment_is_sent(cookieless, invitation, org_a):
    cookieless.get(respond_url(invitation, 7))

    response = cookieless.post(respond_url(invitation), {"comment": "More integrations."})

    [answer] = responses_of(org_a)
    assert (answer.score, answer.comment) == (7, "More integrations.")
    thanks = cookieless.get(response["Location"])
    assert "Thank you! Your feedback helps us improve." in body(thanks)


def test_it_thanks_a_detractor_with_the_detractor_message(cookieless, invitation):
    cookieless.get(respond_url(invitation, 2))
    response = cookieless.post(respond_url(invitation), {"comment": "Too slow."}, follow=True)

    assert "Someone from our team will reach out." in body(response)


def test_it_shows_eleven_score_buttons_in_a_fieldset_and_marks_the_invitation_opened(
    cookieless, invitation, org_a
):
    response = cookieless.get(respond_url(invitation))

    assert response.status_code == 200
    page = body(response)
    assert "<fieldset" in page
    assert "<legend" in page
    assert len(re.findall(r'<button type="submit" name="score" value="(\d+)"', page)) == 11
    assert 'aria-label="0 – Not at all likely"' in page
    assert 'method="post"' in page
    assert "csrfmiddlewaretoken" not in page
    assert "<script" not in page
    assert responses_of(org_a) == []
    assert fresh(invitation).state == InvitationState.OPENED


def test_it_takes_a_score_from_the_form_then_asks_for_the_comment(cookieless, invitation, org_a):
    response = cookieless.post(respond_url(invitation), {"score": "8"})

    assert response.status_code == 303
    comment_page = cookieless.get(response["Location"])
    assert "Thanks! What would make us a 10 for you?" in body(comment_page)
    assert [r.score for r in responses_of(org_a)] == [8]


def test_it_speaks_the_contacts_language(cookieless, invitation, contact):
    with scopes_disabled():
        Contact.objects.filter(pk=contact.pk).update(locale="de-AT")

    response = cookieless.get(respond_url(invitation, 10))

    page = body(response)
    assert '<html lang="de">' in page
    assert "Wunderbar! Was gefällt Ihnen an uns am meisten?" in page
    assert "Feedback senden" in page


def test_it_lets_a_suppressed_contact_answer(cookieless, invitation, contact, org_a):
    with scopes_disabled():
        Contact.objects.filter(pk=contact.pk).update(suppressed_reason="unsubscribed")

    response = cookieless.get(respond_url(invitation, 6))

    assert response.status_code == 200
    assert [r.score for r in responses_of(org_a)] == [6]


def test_it_works_for_someone_signed_in_to_another_organization(client, mallory, invitation):
    client.force_login(mallory)

    response = client.get(respond_url(invitation, 9))

    assert response.status_code == 200
    assert fresh(invitation).state == InvitationState.ANSWERED


@pytest.mark.parametrize("score", ["11", "-1", "abc", "7.5", "", "١"])
def test_it_refuses_a_bad_score_and_changes_nothing(cookieless, invitation, score):
    before = state_of(invitation)

    response = cookieless.get(respond_url(invitation) + f"?score={score}")

    assert response.status_code == 400
    assert "The score must be a whole number from 0 to 10." in body(response)
    assert state_of(invitation) == before


def test_it_refuses_a_bad_posted_score_and_changes_nothing(cookieless, invitation):
    before = state_of(invitation)

    for data in ({"score": "12"}, {"score": "x", "comment": "hi"}, {"comment": "no score yet"}):
        response = cookieless.post(respond_url(invitation), data)
        assert response.status_code == 400

    assert state_of(invitation) == before


def test_it_answers_a_tampered_token_with_a_friendly_400(cookieless, invitation):
    before = state_of(invitation)
    token = tokens.invitation_token(invitation)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    for url in (
        reverse("public:respond", args=[tampered]) + "?score=9",
        reverse("public:respond", args=["not-a-token"]),
    ):
        response = cookieless.get(url)
        assert response.status_code == 400
        assert "This survey link is not valid." in body(response)
    response = cookieless.post(reverse("public:respond", args=[tampered]), {"score": "9"})
    assert response.status_code == 400
    assert state_of(invitation) == before


def test_it_answers_an_expired_token_with_400(cookieless, invitation):
    url = respond_url(invitation, 9)
    before = state_of(invitation)

    with time_machine.travel(now() + tokens.MAX_AGE + timedelta(days=1)):
        response = cookieless.get(url)

    assert response.status_code == 400
    assert "This survey link has expired." in body(response)
    assert state_of(invitation) == before


def test_it_refuses_a_token_made_for_another_purpose_or_tenant(
    cookieless, invitation, org_b, contact
):
    before = state_of(invitation)
    unsubscribe_token = tokens.invitation_token(invitation, salt=tokens.UNSUBSCRIBE_SALT)
    # Correctly signed, but naming org B with org A's invitation id.
    foreign = signing.dumps({"o": org_b.pk, "i": invitation.pk}, salt=tokens.SALT)

    wrong_salt = cookieless.get(reverse("public:respond", args=[unsubscribe_token]) + "?score=1")
    wrong_org = cookieless.get(reverse("public:respond", args=[foreign]) + "?score=1")

    assert wrong_salt.status_code == 400
    assert wrong_org.status_code == 404
    assert state_of(invitation) == before


def test_it_answers_404_for_an_invitation_that_is_gone(cookieless, invitation):
    url = respond_url(invitation, 5)
    with scopes_disabled():
        Invitation.objects.filter(pk=invitation.pk).delete()

    response = cookieless.get(url)

    assert response.status_code == 404
    assert "This survey is no longer available." in body(response)


# --- /u/<token>/ ---------------------------------------------------------------------------


def test_it_asks_before_unsubscribing(cookieless, invitation, contact):
    response = cookieless.get(unsubscribe_url(invitation))

    assert response.status_code == 200
    page = body(response)
    assert "Unsubscribe from surveys by Acme A?" in page
    assert '<button type="submit"' in page
    assert fresh(invitation).contact.suppressed_reason == ""


def test_it_unsubscribes_with_a_one_click_post_without_cookies(
    cookieless, invitation, contact, org_a
):
    later = InvitationFactory(
        programme=invitation.programme,
        contact=contact,
        state=InvitationState.PLANNED,
        planned_for=now() + timedelta(days=30),
    )
    other_contact = InvitationFactory(programme=invitation.programme)

    # RFC 8058: the mail client POSTs this body, with no cookie and no CSRF token.
    response = cookieless.post(
        unsubscribe_url(invitation),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200
    assert not response.cookies
    assert "You are unsubscribed" in body(response)
    with scopes_disabled():
        suppressed = Contact.objects.get(pk=contact.pk)
        assert suppressed.suppressed_reason == "unsubscribed"
        assert suppressed.suppressed_at is not None
        assert Invitation.objects.get(pk=later.pk).state == InvitationState.SUPPRESSED
        assert Invitation.objects.get(pk=later.pk).skip_reason == SkipReason.SUPPRESSED
        assert Invitation.objects.get(pk=other_contact.pk).state == InvitationState.PLANNED
        assert Invitation.objects.get(pk=invitation.pk).state == InvitationState.SENT


def test_it_unsubscribes_idempotently(cookieless, invitation, contact):
    first = cookieless.post(unsubscribe_url(invitation))
    with scopes_disabled():
        stamped = Contact.objects.get(pk=contact.pk).suppressed_at

    second = cookieless.post(unsubscribe_url(invitation))
    shown = cookieless.get(unsubscribe_url(invitation))

    assert first.status_code == second.status_code == 200
    with scopes_disabled():
        assert Contact.objects.get(pk=contact.pk).suppressed_at == stamped
    assert "You are unsubscribed" in body(shown)


def test_it_refuses_a_tampered_unsubscribe_token(cookieless, invitation):
    before = state_of(invitation)
    respond_token = tokens.invitation_token(invitation)

    for token in (unsubscribe_url(invitation).split("/")[-2][:-3] + "xyz", respond_token):
        response = cookieless.post(reverse("public:unsubscribe", args=[token]))
        assert response.status_code == 400
        assert "This link does not work" in body(response)

    assert state_of(invitation) == before


def test_it_keeps_an_unsubscribe_link_working_for_a_year(cookieless, invitation, contact):
    url = unsubscribe_url(invitation)

    with time_machine.travel(now() + timedelta(days=300)):
        response = cookieless.post(url)

    assert response.status_code == 200
    assert fresh(invitation).contact.suppressed_reason == "unsubscribed"


# --- /s/<public_id>/ -----------------------------------------------------------------------


def share_url(survey):
    return reverse("public:share", args=[survey.public_id])


def test_it_shows_the_shareable_page_with_an_optional_email(cookieless, survey):
    response = cookieless.get(share_url(survey) + "?email=ann@customer.example&score=9")

    assert response.status_code == 200
    page = body(response)
    assert 'value="ann@customer.example"' in page
    assert 'value="9" id="score-9" checked' in page
    assert len(re.findall(r'type="radio" name="score"', page)) == 11


def test_it_records_an_anonymous_answer_then_its_comment(cookieless, survey, org_a):
    response = cookieless.post(share_url(survey), {"score": "8"})

    assert response.status_code == 303
    [answer] = responses_of(org_a)
    assert (answer.score, answer.channel, answer.survey_id) == (8, "link", survey.pk)
    with scopes_disabled():
        person = Contact.objects.get(pk=answer.contact_id)
    assert person.email is None
    assert person.external_id.startswith("anon-")

    comment_page = cookieless.get(response["Location"])
    assert "Thanks! What would make us a 10 for you?" in body(comment_page)
    answer_token = re.search(r'name="answer" value="([^"]+)"', body(comment_page)).group(1)
    done = cookieless.post(
        share_url(survey), {"answer": answer_token, "comment": "Dark mode please."}, follow=True
    )

    assert "Thank you! Your feedback helps us improve." in body(done)
    [answer] = responses_of(org_a)
    assert (answer.score, answer.comment) == (8, "Dark mode please.")


def test_it_identifies_an_answer_by_email(cookieless, survey, contact, org_a):
    cookieless.post(share_url(survey), {"score": "10", "email": "Ann@Customer.example"})
    cookieless.post(share_url(survey), {"score": "4", "email": "new.person@customer.example"})

    by_score = {r.score: r for r in responses_of(org_a)}
    assert by_score[10].contact_id == contact.pk
    with scopes_disabled():
        created = Contact.objects.get(pk=by_score[4].contact_id)
    assert created.email == "new.person@customer.example"


def test_it_refuses_a_bad_email_or_score_on_the_shareable_page(cookieless, survey, org_a):
    bad_email = cookieless.post(share_url(survey), {"score": "5", "email": "not an email"})
    no_score = cookieless.post(share_url(survey), {"email": "ann@customer.example"})
    tampered = cookieless.get(share_url(survey) + "?answer=forged")

    assert bad_email.status_code == 400
    assert "Enter a valid email address" in body(bad_email)
    assert no_score.status_code == 400
    assert tampered.status_code == 400
    assert responses_of(org_a) == []


def test_it_rate_limits_answers_per_address(cookieless, survey, org_a, monkeypatch):
    monkeypatch.setattr(public_views, "SHARE_RATE_LIMIT", 3)

    statuses = [
        cookieless.post(share_url(survey), {"score": "9"}, REMOTE_ADDR="203.0.113.7").status_code
        for _ in range(4)
    ]
    elsewhere = cookieless.post(share_url(survey), {"score": "9"}, REMOTE_ADDR="203.0.113.8")

    assert statuses == [303, 303, 303, 429]
    assert elsewhere.status_code == 303
    assert len(responses_of(org_a)) == 4


def test_it_says_why_when_rate_limited(cookieless, survey, monkeypatch):
    monkeypatch.setattr(public_views, "SHARE_RATE_LIMIT", 0)

    response = cookieless.post(share_url(survey), {"score": "9"})

    assert response.status_code == 429
    assert "Too many answers from your network" in body(response)


def test_it_answers_404_for_an_unknown_or_inactive_survey(cookieless, org_a):
    inactive = SurveyFactory(organization=org_a, is_active=False)

    for public_id in ("nope", inactive.public_id):
        assert cookieless.get(reverse("public:share", args=[public_id])).status_code == 404
        response = cookieless.post(reverse("public:share", args=[public_id]), {"score": "9"})
        assert response.status_code == 404
    assert responses_of(org_a) == []


def test_it_takes_a_head_request_for_no_answer(cookieless, invitation):
    before = state_of(invitation)

    response = cookieless.head(respond_url(invitation, 10))

    assert response.status_code == 200
    assert state_of(invitation) == before


def test_it_explains_a_bad_link_in_the_browsers_language(cookieless):
    response = cookieless.get(
        reverse("public:respond", args=["forged"]), headers={"accept-language": "de-DE,de;q=0.9"}
    )

    assert response.status_code == 400
    assert '<html lang="de">' in body(response)
    assert "Dieser Umfrage-Link ist ungültig." in body(response)


def test_it_announces_an_unsubscribe_from_the_link_to_delighted_format_endpoints(
    cookieless, invitation, contact, org_a
):
    with scopes_disabled():
        delighted = WebhookEndpoint.objects.create(
            organization=org_a, url="https://93.184.216.34/d", payload_format="delighted"
        )
        WebhookEndpoint.objects.create(organization=org_a, url="https://93.184.216.34/s")

    cookieless.post(unsubscribe_url(invitation))
    cookieless.post(unsubscribe_url(invitation))  # already unsubscribed: no second event

    with scopes_disabled():
        deliveries = list(WebhookDelivery.objects.values_list("endpoint_id", "event_type"))
    assert deliveries == [(delighted.pk, "unsubscribe.created")]

"""The survey email: both parts, eleven signed one-click links, RFC 8058 headers, the footer,
the contact's language, the brand; and the texts behind it."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.urls import resolve
from django.utils.timezone import now
from django_scopes import scopes_disabled

from surveys import emails, tokens
from surveys.models import InvitationState, SurveySettings
from surveys.texts import pick_language, survey_texts
from tests.accounts.factories import ContactFactory
from tests.surveys.factories import InvitationFactory, SurveyFactory

SITE = "https://nps.example.com"


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = SITE
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "NPS Loop <no-reply@nps.example.com>"


@pytest.fixture
def invitation(org_a):
    with scopes_disabled():
        SurveySettings.objects.create(
            organization=org_a, postal_address="Acme A Ltd, 1 Harbour Road, Bristol BS1 4AB"
        )
    survey = SurveyFactory(
        organization=org_a,
        brand_color="#0E7C66",
        logo_url="https://cdn.acme.example/logo.png",
        sender_name="Acme Success Team",
        sender_email="success@acme.example",
        reply_to="help@acme.example",
    )
    contact = ContactFactory(
        account__organization=org_a, name="Ann Example", email="ann@customer.example"
    )
    return InvitationFactory(
        programme__survey=survey,
        contact=contact,
        state=InvitationState.SENDING,
        sent_at=now(),
    )


def _links(text: str) -> list[str]:
    return re.findall(r"https://nps\.example\.com/r/[^\s\"'<>]+", text)


def test_it_renders_a_text_and_an_html_part_with_eleven_signed_score_links(invitation):
    subject, text, html = emails.render_invitation_email(invitation)

    assert subject == "Quick question from Acme A"
    for body in (text, html):
        links = [link.replace("&amp;", "&") for link in _links(body)]
        assert len(links) == 11
        assert [int(parse_qs(urlsplit(link).query)["score"][0]) for link in links] == list(
            range(11)
        )
        assert len({urlsplit(link).path for link in links}) == 1  # one token, eleven scores
        match = resolve(urlsplit(links[0]).path)
        assert match.view_name == "public:respond"
        assert tokens.invitation_from_token(match.kwargs["token"]).pk == invitation.pk
    assert "Hi Ann, we&#x27;d love to know" in html
    assert "Hi Ann, we'd love to know" in text
    assert "How likely are you to recommend Acme A to a friend or colleague?" in html


def test_it_shows_the_unsubscribe_link_and_the_postal_address_in_both_parts(invitation):
    _, text, html = emails.render_invitation_email(invitation)

    for body in (text, html):
        [token] = re.findall(r"https://nps\.example\.com/u/([^/\s\"]+)/", body)
        assert tokens.invitation_from_token(token, salt=tokens.UNSUBSCRIBE_SALT) == invitation
        assert "Acme A Ltd, 1 Harbour Road, Bristol BS1 4AB" in body
    assert "Unsubscribe from these surveys" in html


def test_it_carries_the_brand_colour_and_logo(invitation):
    _, _, html = emails.render_invitation_email(invitation)

    assert "background-color:#0E7C66" in html
    assert 'src="https://cdn.acme.example/logo.png"' in html


def test_it_keeps_a_broken_brand_colour_out_of_the_styles(invitation):
    invitation.survey.brand_color = "red;background:url(x)"

    _, _, html = emails.render_invitation_email(invitation)

    assert "url(x)" not in html
    assert "background-color:#4F46E5" in html


def test_it_writes_german_to_a_german_contact(invitation):
    invitation.contact.locale = "de-AT"

    subject, text, html = emails.render_invitation_email(invitation)

    assert subject == "Eine kurze Frage von Acme A"
    assert '<html lang="de">' in html
    assert "Wie wahrscheinlich ist es, dass Sie Acme A einem Freund oder Kollegen" in text
    assert "Hallo Ann," in text
    assert "Von diesen Umfragen abmelden" in html


def test_it_prefixes_a_reminder(invitation):
    subject, _, _ = emails.render_invitation_email(invitation, reminder=True)

    assert subject == "Reminder: Quick question from Acme A"


def test_it_sends_both_parts_with_one_click_unsubscribe_headers(invitation):
    message_id = emails.invitation_send(invitation=invitation)

    assert message_id == ""  # the locmem backend has no ESP id
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["ann@customer.example"]
    assert sent.from_email == "Acme Success Team <success@acme.example>"
    assert sent.reply_to == ["help@acme.example"]
    assert sent.alternatives[0][1] == "text/html"
    assert len(_links(sent.body)) == 11
    unsubscribe = sent.extra_headers["List-Unsubscribe"]
    assert unsubscribe.startswith("<https://nps.example.com/u/")
    assert unsubscribe.endswith("/>")
    assert unsubscribe[1:-1] in sent.body
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = resolve(urlsplit(unsubscribe[1:-1]).path).kwargs["token"]
    assert tokens.invitation_from_token(token, salt=tokens.UNSUBSCRIBE_SALT).pk == invitation.pk
    assert sent.metadata == {
        "organization_id": str(invitation.organization_id),
        "invitation_id": str(invitation.pk),
    }
    assert sent.tags == ["nps-survey"]
    raw = sent.message().as_string()
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw


def test_it_returns_the_esp_message_id_through_anymail(invitation, settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"

    first = emails.invitation_send(invitation=invitation)
    second = emails.invitation_send(invitation=invitation, reminder=True)

    # anymail's test backend numbers its messages in the outbox.
    assert (first, second) == ("0", "1")
    params = mail.outbox[1].anymail_test_params
    assert params["metadata"] == {
        "organization_id": str(invitation.organization_id),
        "invitation_id": str(invitation.pk),
    }
    assert params["tags"] == ["nps-survey", "nps-reminder"]


def test_it_sends_from_the_platform_address_with_the_sender_name(invitation):
    invitation.survey.sender_email = ""
    invitation.survey.reply_to = ""

    emails.invitation_send(invitation=invitation)

    assert mail.outbox[0].from_email == "Acme Success Team <no-reply@nps.example.com>"
    assert mail.outbox[0].reply_to == []


def test_it_names_the_organization_when_the_survey_has_no_sender(invitation):
    invitation.survey.sender_name = ""
    invitation.survey.sender_email = ""

    emails.invitation_send(invitation=invitation)

    assert mail.outbox[0].from_email == "Acme A <no-reply@nps.example.com>"


def test_it_refuses_a_contact_without_email(invitation):
    invitation.contact.email = None

    with pytest.raises(ValueError, match="no contact email"):
        emails.invitation_send(invitation=invitation)
    assert mail.outbox == []


def test_it_previews_with_a_made_up_contact_and_dead_links(org_a):
    survey = SurveyFactory(organization=org_a)

    subject, text, html = emails.render_preview_email(survey, org_a, "de")

    assert subject == "Eine kurze Frage von Acme A"
    assert "Hallo Alex," in text
    assert "/r/" not in html
    assert 'href="#score-10"' in html


# --- Texts ---------------------------------------------------------------------------------


def test_it_picks_the_language_from_the_locale():
    assert pick_language("de-AT") == "de"
    assert pick_language("fr_CA") == "fr"
    assert pick_language("pt-BR") == "en"
    assert pick_language("") == "en"
    assert pick_language(None) == "en"


def test_it_lets_a_survey_translation_win_field_by_field(org_a):
    survey = SurveyFactory(
        organization=org_a,
        translations={"de": {"question": "Würden Sie {org} weiterempfehlen?"}},
    )

    words = survey_texts(survey, "de-CH", org_a, first_name="Jonas")

    assert words["lang"] == "de"
    assert words["question"] == "Würden Sie Acme A weiterempfehlen?"
    assert words["prompts"]["detractor"] == "Das tut uns leid. Was sollten wir besser machen?"
    assert words["email_intro"].startswith("Hallo Jonas, ")
    assert words["send"] == "Senden"


def test_it_keeps_an_admins_own_wording_over_the_stock_translation(org_a):
    survey = SurveyFactory(organization=org_a, question="How do you rate {org}?")

    words = survey_texts(survey, "de", org_a)

    assert words["question"] == "How do you rate Acme A?"
    assert words["thanks"]["promoter"].startswith("Vielen Dank!")


def test_it_falls_back_to_english_for_unknown_languages(org_a):
    survey = SurveyFactory(organization=org_a)

    words = survey_texts(survey, "ja-JP", org_a, first_name="")

    assert words["lang"] == "en"
    assert words["email_intro"].startswith("Hi, we'd love")
    assert words["thanks"] == {
        "detractor": "Thank you for being honest. Someone from our team will reach out.",
        "passive": "Thank you! Your feedback helps us improve.",
        "promoter": "Thank you! We're thrilled you'd recommend us.",
    }


def test_it_survives_stray_braces_in_an_admins_text(org_a):
    survey = SurveyFactory(
        organization=org_a,
        question="{0} {unknown} {org.__class__} { {org} }",
        email_subject="Hi {first_name} from {org",
    )

    words = survey_texts(survey, "en", org_a, first_name="Ann")

    assert words["question"] == "{0} {unknown} {org.__class__} { Acme A }"
    assert words["email_subject"] == "Hi Ann from {org"


def test_it_quotes_a_sender_name_that_needs_it(invitation):
    invitation.survey.sender_name = "Acme, Inc. (Success)"

    emails.invitation_send(invitation=invitation)

    assert mail.outbox[0].from_email == '"Acme, Inc. (Success)" <success@acme.example>'
    assert 'From: "Acme, Inc. (Success)" <success@acme.example>' in (
        mail.outbox[0].message().as_string()
    )

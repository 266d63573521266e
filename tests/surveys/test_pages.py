"""The survey admin pages: list, survey editor and preview, programme editor with forecast and
coverage, send log, settings, the in-app install page, and who may open them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scopes_disabled

from surveys.models import (
    DEFAULT_QUESTION,
    InvitationState,
    Programme,
    SkipReason,
    Survey,
    SurveySettings,
)
from tests.accounts.factories import AccountFactory, ContactFactory, SegmentFactory
from tests.conftest import client_for
from tests.surveys.factories import InvitationFactory, ProgrammeFactory, SurveyFactory

pytestmark = pytest.mark.django_db


def survey_post(**overrides):
    data = {
        "name": "Relationship NPS",
        "is_active": "on",
        "question": "How likely are you to recommend {org}?",
        "prompt_detractor": "What went wrong?",
        "prompt_passive": "What would make it a 10?",
        "prompt_promoter": "What do you love?",
        "thanks_detractor": "Sorry, we'll be in touch.",
        "thanks_passive": "Thanks!",
        "thanks_promoter": "Thank you!",
        "email_subject": "A question from {org}",
        "email_intro": "Hi {first_name}, one click.",
        "logo_url": "",
        "brand_color": "#112233",
        "sender_name": "Acme Team",
        "sender_email": "team@acme.example",
        "reply_to": "",
        "de_question": "Würden Sie {org} empfehlen?",
        "preview_lang": "en",
    }
    data.update(overrides)
    return data


def programme_post(for_survey, segment=None, **overrides):
    data = {
        "name": "Quarterly",
        "is_active": "on",
        "survey": str(for_survey.pk),
        "segment": str(segment.pk) if segment else "",
        "channel_email": "on",
        "every_days": "90",
        "account_cap": "",
        "account_cap_days": "30",
        "min_tenure_days": "0",
        "pacing": "drip",
        "daily_cap": "",
        "window_start_hour": "0",
        "window_end_hour": "24",
        "reminder_after_days": "",
        "trigger_event_0": "onboarding_completed",
        "trigger_delay_0": "3",
    }
    data.update(overrides)
    return data


# --- The list -------------------------------------------------------------------------------


def test_it_lists_surveys_and_programmes_in_constant_queries(as_alice, org_a):
    survey = SurveyFactory(organization=org_a, name="Main NPS")
    programme = ProgrammeFactory(survey=survey, name="Everyone", every_days=90)
    InvitationFactory(programme=programme, planned_for=now() + timedelta(days=2))
    url = reverse("surveys:list")
    as_alice.get(url)  # the first request of a session does a little more
    with CaptureQueriesContext(connection) as few:
        response = as_alice.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Main NPS" in page
    assert "Everyone" in page
    assert "every 90 days · drip · email" in page
    for n in range(5):
        more = ProgrammeFactory(survey=survey, segment=SegmentFactory(organization=org_a))
        InvitationFactory(programme=more, planned_for=now() + timedelta(days=n))
    with CaptureQueriesContext(connection) as many:
        assert as_alice.get(url).status_code == 200
    assert len(many) == len(few)


# --- The survey editor ----------------------------------------------------------------------


def test_it_creates_a_survey_with_a_german_translation(as_alice, org_a):
    response = as_alice.post(reverse("surveys:survey_create"), survey_post())
    assert response.status_code == 302
    with scopes_disabled():
        survey = Survey.objects.get(organization=org_a, name="Relationship NPS")
    assert survey.brand_color == "#112233"
    assert survey.translations == {"de": {"question": "Würden Sie {org} empfehlen?"}}
    assert response["Location"] == reverse("surveys:survey_edit", args=[survey.pk])


def test_it_shows_survey_validation_errors(as_alice, org_a):
    SurveyFactory(organization=org_a, name="Taken")
    response = as_alice.post(
        reverse("surveys:survey_create"),
        survey_post(name="Taken", question="", brand_color="red", sender_email="nope"),
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "exists already" in page
    assert "Ask the question" in page
    assert "#rrggbb" in page
    assert "valid email" in page
    with scopes_disabled():
        assert Survey.objects.filter(organization=org_a).count() == 1


def test_it_keeps_other_translations_when_a_survey_is_edited(as_alice, org_a):
    survey = SurveyFactory(organization=org_a, translations={"fr": {"question": "Q ?"}})
    url = reverse("surveys:survey_edit", args=[survey.pk])
    assert as_alice.get(url).status_code == 200
    response = as_alice.post(url, survey_post(name="Renamed", de_question=""))
    assert response.status_code == 302
    survey.refresh_from_db()
    assert survey.name == "Renamed"
    assert survey.translations == {"fr": {"question": "Q ?"}}


@pytest.mark.parametrize(("lang", "expected"), [("en", "recommend Acme A"), ("de", "Würden Sie")])
def test_it_previews_in_both_languages(as_alice, org_a, lang, expected):
    survey = SurveyFactory(organization=org_a)
    response = as_alice.post(
        reverse("surveys:survey_preview", args=[survey.pk]), survey_post(preview_lang=lang)
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert expected in page
    assert "<iframe" in page
    assert 'sandbox=""' in page
    assert "background: #112233" in page


def test_it_previews_a_new_survey_in_stock_german(as_alice):
    response = as_alice.post(
        reverse("surveys:survey_preview", args=[0]),
        survey_post(question=DEFAULT_QUESTION, de_question="", preview_lang="de"),
    )
    assert response.status_code == 200
    assert "Wie wahrscheinlich" in response.content.decode()


@pytest.mark.parametrize(
    "odd",
    [
        {"question": "{0} {org.__class__} {", "brand_color": "javascript:alert(1)"},
        {"email_intro": "x" * 5000, "logo_url": '"><script>alert(1)</script>'},
        {"preview_lang": "zz-ZZ-weird", "de_question": "<b>bold</b>"},
        {},
    ],
)
def test_it_previews_odd_input_without_failing(as_alice, org_a, odd):
    data = survey_post(**odd) if odd else {}
    response = as_alice.post(reverse("surveys:survey_preview", args=[0]), data)
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.content.decode()


# --- The programme editor -------------------------------------------------------------------


def test_it_creates_a_programme_for_a_segment(as_alice, org_a):
    survey = SurveyFactory(organization=org_a)
    segment = SegmentFactory(organization=org_a)
    assert as_alice.get(reverse("surveys:programme_create")).status_code == 200
    response = as_alice.post(reverse("surveys:programme_create"), programme_post(survey, segment))
    assert response.status_code == 302
    with scopes_disabled():
        programme = Programme.objects.get(organization=org_a)
    assert programme.segment == segment
    assert programme.daily_cap is None
    assert programme.window_end_hour == 24
    assert programme.triggers == [{"event": "onboarding_completed", "delay_days": 3}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window_start_hour": "17", "window_end_hour": "9"}, "must end after it starts"),
        ({"every_days": "0"}, "between 1 and"),
        ({"every_days": "abc"}, "whole number"),
        ({"channel_email": ""}, "at least one channel"),
        ({"reminder_after_days": "120"}, "before the contact is due again"),
        ({"trigger_event_0": "bad event!"}, "name the event"),
        ({"survey": ""}, "Choose the survey"),
        ({"name": ""}, "Give the programme a name"),
    ],
)
def test_it_validates_a_programme(as_alice, org_a, overrides, message):
    survey = SurveyFactory(organization=org_a)
    response = as_alice.post(
        reverse("surveys:programme_create"), programme_post(survey, **overrides)
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    with scopes_disabled():
        assert not Programme.objects.filter(organization=org_a).exists()


def test_it_shows_a_programmes_forecast_coverage_and_eligibility(as_alice, org_a):
    survey = SurveyFactory(organization=org_a)
    rich = AccountFactory(organization=org_a, arr=900_000, health_score=20, plan="enterprise")
    small = AccountFactory(organization=org_a, arr=1_000, health_score=90, plan="growth")
    ContactFactory(account=rich)
    for _ in range(3):
        ContactFactory(account=small)
    ContactFactory(account=small, suppressed_reason="unsubscribed")
    segment = SegmentFactory(organization=org_a)  # plan = growth: leaves the big one out
    programme = ProgrammeFactory(survey=survey, segment=segment, every_days=3)
    response = as_alice.get(reverse("surveys:programme_edit", args=[programme.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Forecast, next 14 days" in page
    assert "Eligible now: 3" in page
    assert SkipReason.SUPPRESSED.label in page
    assert "of low-health" in page
    assert "of ARR" in page
    assert page.count('class="bar-cell"') == 14


def test_it_saves_a_programme_edit_and_shows_errors_without_losing_the_page(as_alice, org_a):
    programme = ProgrammeFactory(survey=SurveyFactory(organization=org_a))
    url = reverse("surveys:programme_edit", args=[programme.pk])
    response = as_alice.post(
        url, programme_post(programme.survey, window_start_hour="20", window_end_hour="8")
    )
    assert response.status_code == 400
    assert "Forecast" in response.content.decode()
    response = as_alice.post(url, programme_post(programme.survey, pacing="cap", daily_cap="25"))
    assert response.status_code == 302
    programme.refresh_from_db()
    assert programme.daily_cap == 25


# --- The send log ---------------------------------------------------------------------------


def test_it_filters_the_send_log_and_answers_why_not(as_alice, org_a):
    programme = ProgrammeFactory(survey=SurveyFactory(organization=org_a), name="Quarterly")
    ann = ContactFactory(account=AccountFactory(organization=org_a), email="ann@initech.example")
    InvitationFactory(
        programme=programme,
        contact=ann,
        state=InvitationState.SKIPPED,
        skip_reason=SkipReason.FATIGUED,
    )
    InvitationFactory(programme=programme, state=InvitationState.SENT, sent_at=now())
    url = reverse("surveys:send_log")
    page = as_alice.get(url, {"email": "ann@"}).content.decode()
    assert "ann@initech.example" in page
    assert SkipReason.FATIGUED.label in page
    assert "1 invitation match" in page
    page = as_alice.get(url, {"state": "sent"}).content.decode()
    assert "ann@initech.example" not in page
    assert "Sent" in page
    page = as_alice.get(url, {"skip_reason": "fatigued", "programme": programme.pk}).content
    assert b"ann@initech.example" in page
    today = now().date()
    page = as_alice.get(url, {"since": str(today + timedelta(days=1))}).content.decode()
    assert "No invitation matches" in page
    assert as_alice.get(url, {"since": "not-a-date", "page": "x"}).status_code == 200


def test_it_pages_the_send_log_in_constant_queries(as_alice, org_a):
    programme = ProgrammeFactory(survey=SurveyFactory(organization=org_a))
    InvitationFactory(programme=programme)
    url = reverse("surveys:send_log")
    as_alice.get(url)
    with CaptureQueriesContext(connection) as few:
        as_alice.get(url)
    for _ in range(55):
        InvitationFactory(programme=programme)
    with CaptureQueriesContext(connection) as many:
        response = as_alice.get(url)
    assert len(many) == len(few)
    assert response.content.decode().count("data-invitation-id") == 50
    assert "Page 1 of 2" in response.content.decode()


# --- Settings and in-app --------------------------------------------------------------------


def test_it_saves_and_validates_survey_settings(as_alice, org_a):
    url = reverse("surveys:settings")
    assert as_alice.get(url).status_code == 200
    response = as_alice.post(url, {"fatigue_days": "-3", "postal_address": "x"})
    assert response.status_code == 400
    assert "between 0 and 3650" in response.content.decode()
    response = as_alice.post(url, {"fatigue_days": "60", "postal_address": "1 Main St"})
    assert response.status_code == 302
    with scopes_disabled():
        row = SurveySettings.objects.get(organization=org_a)
    assert (row.fatigue_days, row.postal_address) == (60, "1 Main St")


def test_it_shows_the_in_app_install_page(as_alice, org_a):
    response = as_alice.get(reverse("surveys:in_app_install"))
    assert response.status_code == 200
    with scopes_disabled():
        row = SurveySettings.objects.get(organization=org_a)
    page = response.content.decode()
    assert row.publishable_key in page
    assert "js/nps-widget.js" in page
    assert "hmac.new" in page
    assert "createHmac" in page
    assert "NPSLoop.init" in page


# --- Access ---------------------------------------------------------------------------------


ROUTES = [  # (name, object, accepts POST)
    ("surveys:list", False, False),
    ("surveys:survey_create", False, True),
    ("surveys:survey_edit", "survey", True),
    ("surveys:survey_preview", "survey", True),
    ("surveys:programme_create", False, True),
    ("surveys:programme_edit", "programme", True),
    ("surveys:send_log", False, False),
    ("surveys:settings", False, True),
    ("surveys:in_app_install", False, False),
]


@pytest.fixture
def a_objects(org_a):
    programme = ProgrammeFactory(survey=SurveyFactory(organization=org_a))
    return {"survey": programme.survey.pk, "programme": programme.pk}


@pytest.mark.parametrize("who", ["bob", "carol"])
@pytest.mark.parametrize(("name", "obj", "posts"), ROUTES)
def test_it_answers_403_to_non_admins(client, request, a_objects, who, name, obj, posts):
    client_for(client, request.getfixturevalue(who))
    url = reverse(name, args=[a_objects[obj]] if obj else [])
    assert client.get(url).status_code == 403
    assert client.post(url, {}).status_code == (403 if posts else 405)


@pytest.mark.parametrize(("name", "obj"), [r[:2] for r in ROUTES if r[1]])
def test_it_answers_404_to_an_outsider_on_org_a_objects(client, mallory, a_objects, name, obj):
    client_for(client, mallory)
    url = reverse(name, args=[a_objects[obj]])
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "Hijack"}).status_code == 404
    with scopes_disabled():
        assert not Survey.objects.filter(name="Hijack").exists()

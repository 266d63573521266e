"""Survey distribution end to end in a real browser: an admin creates a survey and a programme
for a segment and sees its forecast; the scheduler plans and sends the invitation; the
respondent opens a score link from the captured email, adds a comment and is thanked; the
response exists with that score and comment."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django_scopes import scope, scopes_disabled
from playwright.sync_api import expect

from accounts import services as account_services
from responses.models import Response
from surveys import scheduler
from surveys.models import Invitation, InvitationState, Programme
from tests.accounts.factories import SegmentFactory
from tests.browser.test_explorer_browser import sign_in
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

COMMENT = "Setup took far too long."


@pytest.fixture
def customers(org_a):
    """One growth account with Ann, and the "Growth customers" segment."""
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {
                    "external_id": "acc-1",
                    "name": "Initech",
                    "plan": "growth",
                    "arr": 50000,
                    "signed_up_on": "2023-01-01",
                }
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {
                    "email": "ann@initech.example",
                    "name": "Ann Smith",
                    "account_external_id": "acc-1",
                    "timezone": "UTC",
                    "locale": "en",
                }
            ],
        )
    return SegmentFactory(organization=org_a, name="Growth customers")


def test_it_lets_an_admin_set_up_a_programme_and_the_respondent_answer_from_the_email(
    page, settings, org_a, alice, customers
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    sign_in(page, "alice@a.example", PASSWORD)

    # The survey.
    page.goto("/surveys/new/")
    page.get_by_label("Name", exact=True).fill("Relationship NPS")
    with page.expect_navigation():
        page.get_by_role("button", name="Create survey").click()
    expect(page.get_by_role("heading", name="Edit “Relationship NPS”")).to_be_visible()

    # The programme for the segment, sending around the clock.
    page.goto("/surveys/programmes/new/")
    page.get_by_label("Name", exact=True).fill("Growth quarterly")
    page.get_by_label("Survey", exact=True).select_option(label="Relationship NPS")
    page.get_by_label("Segment", exact=True).select_option(label="Growth customers")
    page.get_by_label("Send window from (hour)").fill("0")
    page.get_by_label("to (hour)", exact=True).fill("24")
    page.get_by_label("Business days only (Mon–Fri)").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Create programme").click()
    expect(page.get_by_role("heading", name="Forecast, next 14 days")).to_be_visible()
    expect(page.locator("#forecast tbody tr")).to_have_count(14)
    expect(page.get_by_role("heading", name="Eligible now: 1")).to_be_visible()

    # The beat's planning tick and the dispatcher, in the test.
    with scope(organization=org_a):
        programme = Programme.objects.get(organization=org_a, name="Growth quarterly")
        assert programme.segment == customers
        report = scheduler.programme_plan(organization=org_a, programme=programme)
        assert report.planned == 1
        invitation = Invitation.objects.get(programme=programme, state=InvitationState.PLANNED)
        sent = scheduler.invitations_dispatch(organization=org_a, now=invitation.planned_for)
        assert sent.sent == 1
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ann@initech.example"]
    link = re.search(r"https?://\S+\?score=3\b", email.body).group(0)
    parts = urlsplit(link)

    # The respondent, with one click.
    page.goto(f"{parts.path}?{parts.query}")
    page.get_by_label(re.compile("What should we do better")).fill(COMMENT)
    page.get_by_role("button", name="Send feedback").click()
    expect(page.get_by_text("Thank you for being honest")).to_be_visible()

    with scopes_disabled():
        response = Response.objects.get(organization=org_a)
        assert (response.score, response.comment) == (3, COMMENT)
        invitation.refresh_from_db()
        assert invitation.state == InvitationState.ANSWERED

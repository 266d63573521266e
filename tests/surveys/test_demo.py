"""The surveys demo: a year of drip history behind the demo responses."""

import io
import time

import pytest
from django_scopes import scope

from accounts.demo import seed_accounts
from responses.demo import seed_responses
from responses.models import Response
from surveys.demo import seed_surveys
from surveys.models import Invitation, InvitationState, Programme, Survey

pytestmark = pytest.mark.django_db
S = InvitationState


def test_it_seeds_a_demo_that_looks_like_a_year_of_drip_history(org_a):
    out = io.StringIO()
    with scope(organization=org_a):
        seed_accounts(organization=org_a, stdout=out)
        seed_responses(organization=org_a, stdout=out, target=800)
        started = time.monotonic()
        seed_surveys(organization=org_a, stdout=out)
        assert time.monotonic() - started < 15

        survey = Survey.objects.get(organization=org_a)
        assert "de" in survey.translations
        names = set(Programme.objects.filter(organization=org_a).values_list("name", flat=True))
        assert names == {"Quarterly relationship NPS", "Enterprise pulse"}
        pulse = Programme.objects.get(organization=org_a, name="Enterprise pulse")
        assert pulse.segment is not None
        assert pulse.account_cap
        assert pulse.triggers == [{"event": "onboarding_completed", "delay_days": 14}]

        invitations = Invitation.objects.filter(organization=org_a)
        states = {s: invitations.filter(state=s).count() for s in S.values}
        asked = sum(states[s] for s in (S.SENT, S.DELIVERED, S.OPENED, S.ANSWERED, S.BOUNCED))
        assert 0.25 <= states[S.ANSWERED] / asked <= 0.35
        assert states[S.BOUNCED]
        assert states[S.SKIPPED]
        assert states[S.SUPPRESSED]
        assert states[S.PLANNED] > 0
        assert (
            invitations.filter(state=S.SKIPPED).exclude(skip_reason="").count()
            == (states[S.SKIPPED])
        )

        # Each linked response has its answered invitation, sent before it.
        linked = Response.objects.filter(organization=org_a, invitation_id__isnull=False)
        assert linked.count() == states[S.ANSWERED]
        assert not linked.filter(survey_id__isnull=True).exists()
        by_id = {i.pk: i for i in invitations.filter(state=S.ANSWERED)}
        for response in linked:
            invitation = by_id[response.invitation_id]
            assert invitation.response_id == response.pk
            assert invitation.contact_id == response.contact_id
            assert invitation.sent_at < response.submitted_at
        # last_surveyed_at is the latest send.
        sent = (
            invitations.filter(sent_at__isnull=False).exclude(state=S.FAILED).order_by("-sent_at")
        )
        latest = sent.first()
        assert latest.contact.last_surveyed_at == latest.sent_at
    assert "invitations" in out.getvalue()

"""The executives' weekly digest: its figures, once per week, only to that organization."""

import datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail
from django_scopes import scope, scopes_disabled

from insights import digest, services, tasks
from insights.models import WeeklyDigest
from nps_platform.models import Role
from responses.models import ResponseTheme
from tests.accounts.factories import AccountFactory
from tests.factories import MembershipFactory, UserFactory
from tests.insights.factories import FollowUpFactory, ResponseFactory, at

TODAY = datetime.date(2026, 11, 18)  # a Wednesday: the digest covers 9–15 November
WEEK = datetime.date(2026, 11, 9)


@pytest.fixture
def week_of_answers(org_a, carol):
    """Org A's week: 30 promoters, 5 passives and 10 detractors (NPS +44); the week before,
    20 promoters and 20 detractors (NPS 0). One detractor account with ARR 80,000."""
    acme = AccountFactory(organization=org_a, name="Umbrella Corp", arr=Decimal("80000"))
    day = datetime.date(2026, 11, 11)
    for score in [10] * 30 + [7] * 5:
        ResponseFactory(organization=org_a, score=score, submitted_at=at(day))
    detractors = [
        ResponseFactory(
            organization=org_a,
            account=acme,
            score=2,
            submitted_at=at(day),
            comment="Far too expensive",
        )
        for _ in range(10)
    ]
    for score in [9] * 20 + [4] * 20:
        ResponseFactory(
            organization=org_a, score=score, submitted_at=at(day - datetime.timedelta(7))
        )
    with scopes_disabled():
        for response in detractors:
            ResponseTheme.objects.create(organization=org_a, response=response, theme="pricing")
    FollowUpFactory(
        response=detractors[0],
        first_contact_at=at(day, 14),
        status="closed",
        outcome="resolved",
        closed_at=at(day, 16),
    )
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    return acme


def send(org, today=TODAY):
    with scope(organization=org.pk):
        return digest.weekly_digest_send(organization=org, today=today)


def test_it_picks_the_last_complete_week():
    assert digest.digest_week(TODAY) == (WEEK, datetime.date(2026, 11, 15))
    assert digest.digest_week(datetime.date(2026, 11, 16)) == (WEEK, datetime.date(2026, 11, 15))


def test_it_sends_the_weeks_figures_to_the_executives(org_a, carol, alice, bob, week_of_answers):
    assert send(org_a) == 1
    [message] = mail.outbox
    assert message.to == ["carol@a.example"]
    assert "week of 9 Nov 2026" in message.subject
    text = message.body
    assert "NPS: +44 (95% interval" in text
    assert "45 answers" in text
    assert "Change vs the week before: +44 points, significant" in text
    assert "Revenue at risk: $80,000 across 1 detractor account" in text
    assert "Umbrella Corp: $80,000" in text
    assert "100% of 1 detractor follow-up contacted within SLA" in text
    assert "Pricing: 10 mentions (10 from detractors, 0 from promoters)" in text
    link = f"{settings.SITE_URL}/dashboard/?since=2026-11-09&until=2026-11-15&period=week"
    assert link in text
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert 'data-digest="nps">+44<' in html
    assert 'data-digest="revenue-at-risk">$80,000<' in html
    assert link.replace("&", "&amp;") in html


def test_it_sends_each_week_once_even_when_retried(org_a, carol, week_of_answers):
    assert send(org_a) == 1
    assert send(org_a) == 0
    assert send(org_a, today=TODAY + datetime.timedelta(days=2)) == 0  # still the same week
    assert len(mail.outbox) == 1
    with scopes_disabled():
        [claim] = WeeklyDigest.objects.filter(organization=org_a)
    assert claim.week_start == WEEK
    assert claim.recipients == 1
    assert claim.sent_at is not None
    assert send(org_a, today=TODAY + datetime.timedelta(days=7)) == 1  # the next week
    assert len(mail.outbox) == 2


def test_it_sends_the_week_again_when_sending_failed(org_a, carol, week_of_answers, monkeypatch):
    def broken(self, fail_silently=False):
        raise ConnectionError("SMTP is down")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", broken)
    with pytest.raises(ConnectionError):
        send(org_a)
    monkeypatch.undo()
    with scopes_disabled():
        assert not WeeklyDigest.objects.filter(organization=org_a).exists()
    assert send(org_a) == 1


def test_it_writes_only_to_that_organizations_executives(
    org_a, org_b, carol, mallory, week_of_answers
):
    other_exec = MembershipFactory(
        organization=org_b, user=UserFactory(email="olga@b.example"), role=Role.EXEC
    ).user
    assert send(org_a) == 1
    assert [m.to for m in mail.outbox] == [["carol@a.example"]]
    mail.outbox.clear()
    assert send(org_b) == 1
    [message] = mail.outbox
    assert message.to == [other_exec.email]
    assert "Umbrella Corp" not in message.body
    assert "Acme A" not in message.body
    assert "no answers this week" in message.body


def test_it_says_insufficient_data_for_a_quiet_week(org_a, carol):
    for score in (10, 3, 8):
        ResponseFactory(
            organization=org_a, score=score, submitted_at=at(datetime.date(2026, 11, 10))
        )
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    assert send(org_a) == 1
    assert "insufficient data (3 answers; a score needs 30)" in mail.outbox[0].body
    assert "Change vs the week before: —" in mail.outbox[0].body


def test_it_sends_nothing_without_executives(org_a, alice, bob):
    assert send(org_a) == 0
    assert mail.outbox == []
    with scopes_disabled():
        assert not WeeklyDigest.objects.exists()


def test_it_fans_out_one_task_per_organization_from_the_beat_sweep(org_a, org_b, carol, mallory):
    # Tasks run in-process in the tests; the sweep reaches each organization's task.
    assert tasks.weekly_digest_sweep.delay().get() == 2
    assert [m.to for m in mail.outbox] == [["carol@a.example"]]  # org B has no executive
    entry = settings.CELERY_BEAT_SCHEDULE["weekly-exec-digests"]
    assert entry["task"] == "insights.weekly_digest_sweep"

"""The one eligibility rule, with time frozen: each exclusion, the reasons recorded and
queryable, fatigue across programmes, the account cap, tenure, and coverage warnings."""

import datetime
from collections import Counter
from datetime import UTC, timedelta

import pytest
import time_machine
from django_scopes import scope, scopes_disabled

from accounts.models import Contact
from surveys import eligibility, scheduler, selectors
from surveys.models import Invitation, InvitationState, SkipReason, SurveySettings
from tests.accounts.factories import (
    AccountFactory,
    ContactFactory,
    SegmentFactory,
    SupportTicketFactory,
)
from tests.surveys.factories import InvitationFactory, ProgrammeFactory

pytestmark = pytest.mark.django_db

S = InvitationState
MONDAY = datetime.datetime(2026, 3, 2, 0, 5, tzinfo=UTC)


def reasons(organization, programme, at=MONDAY) -> dict[str, str | None]:
    with scope(organization=organization):
        rows = eligibility.skip_reasons(organization=organization, programme=programme, at=at)
        return {row.name: row.skip_reason for row in rows}


def plan(organization, programme, at=MONDAY):
    with scope(organization=organization):
        return scheduler.programme_plan(organization=organization, programme=programme, at=at)


def send_due(organization, now):
    with scope(organization=organization):
        return scheduler.invitations_dispatch(organization=organization, now=now)


def test_it_records_every_skip_reason_and_answers_why_ann_was_not_surveyed(org_a):
    programme = ProgrammeFactory(
        survey__organization=org_a, every_days=7, account_cap=1, min_tenure_days=30
    )
    ann = ContactFactory(account__organization=org_a, name="Ann", suppressed_reason="bounced")
    ContactFactory(
        account__organization=org_a, name="Ben", email=None, external_id="crm-ben"
    )  # no email
    ContactFactory(
        account__organization=org_a, name="Cid", account__churned_at=MONDAY - timedelta(days=3)
    )
    ContactFactory(account__organization=org_a, name="Cat", account__lifecycle_stage="churned")
    ContactFactory(
        account__organization=org_a,
        name="Dee",
        account__signed_up_on=datetime.date(2026, 2, 20),
    )
    ContactFactory(
        account__organization=org_a, name="Eve", last_surveyed_at=MONDAY - timedelta(days=10)
    )
    full = AccountFactory(organization=org_a)
    ContactFactory(
        account=full, name="Fay", last_surveyed_at=MONDAY - timedelta(days=200)
    )  # her account's one place is taken by Flo
    ContactFactory(account=full, name="Flo", last_responded_at=MONDAY - timedelta(days=5))
    with scopes_disabled():
        Contact.objects.filter(name="Flo").update(last_surveyed_at=MONDAY - timedelta(days=5))
    ContactFactory(
        account__organization=org_a,
        name="Gus",
        account__signed_up_on=datetime.date(2025, 1, 1),
    )

    assert reasons(org_a, programme) == {
        "Ann": SkipReason.SUPPRESSED,
        "Ben": SkipReason.NO_EMAIL,
        "Cid": SkipReason.CHURNED,
        "Cat": SkipReason.CHURNED,
        "Dee": SkipReason.TENURE,
        "Eve": SkipReason.FATIGUED,
        "Fay": SkipReason.ACCOUNT_CAP,
        "Flo": SkipReason.FATIGUED,
        "Gus": None,
    }
    report = plan(org_a, programme)
    assert report.planned == 1
    assert report.skipped_by_reason == {
        SkipReason.SUPPRESSED: 1,
        SkipReason.NO_EMAIL: 1,
        SkipReason.CHURNED: 2,
        SkipReason.TENURE: 1,
        SkipReason.FATIGUED: 2,
        SkipReason.ACCOUNT_CAP: 1,
    }
    with scope(organization=org_a):
        # The send log answers "why wasn't Ann surveyed?"…
        [skip] = selectors.invitations_of(org_a, contact=ann)
        assert (skip.state, skip.skip_reason, skip.programme_id) == (
            S.SKIPPED,
            SkipReason.SUPPRESSED,
            programme.pk,
        )
        assert selectors.invitations_of(org_a, skip_reason="account_cap").get().contact.name == (
            "Fay"
        )
        assert selectors.skip_counts(org_a, programme=programme)[SkipReason.CHURNED] == 2
        # …and so does the rule itself, for now.
        [verdict] = selectors.why_not_surveyed(org_a, ann, at=MONDAY)
        assert verdict.reason == SkipReason.SUPPRESSED
        assert verdict.label == "Unsubscribed, bounced or complained"
        gus = Contact.objects.get(name="Gus")
        assert eligibility.contact_skip_reason(
            organization=org_a, programme=programme, contact=gus, at=MONDAY
        ) == (SkipReason.ALREADY_PLANNED)


def test_it_never_excludes_unhappy_customers(org_a):
    programme = ProgrammeFactory(survey__organization=org_a)
    unhappy = ContactFactory(
        account__organization=org_a, name="Una", account__health_score=5, account__last_score=1
    )
    SupportTicketFactory(account=unhappy.account, contact=unhappy, status="open")
    assert reasons(org_a, programme) == {"Una": None}


def test_it_keeps_fatigue_across_programmes(org_a):
    ann = ContactFactory(account__organization=org_a, name="Ann")
    first = ProgrammeFactory(survey__organization=org_a, name="Relationship", every_days=30)
    second = ProgrammeFactory(survey__organization=org_a, name="Support", every_days=7)
    with scopes_disabled():
        SurveySettings.objects.create(organization=org_a, fatigue_days=60)
    assert plan(org_a, first).planned == 1
    # Planned in the first programme: the second must not ask her too.
    assert reasons(org_a, second) == {"Ann": SkipReason.FATIGUED}
    assert reasons(org_a, first) == {"Ann": SkipReason.ALREADY_PLANNED}
    assert send_due(org_a, MONDAY.replace(hour=18)).sent == 1
    # Sent: the first programme waits its every_days, the second the fatigue_days.
    later = MONDAY + timedelta(days=40)
    assert reasons(org_a, first, at=later) == {"Ann": SkipReason.FATIGUED}
    assert reasons(org_a, second, at=later) == {"Ann": SkipReason.FATIGUED}
    assert reasons(org_a, first, at=MONDAY + timedelta(days=20)) == {"Ann": eligibility.NOT_DUE}
    with time_machine.travel(later, tick=False):
        assert plan(org_a, second, at=later).planned == 0
    assert reasons(org_a, second, at=MONDAY + timedelta(days=61)) == {"Ann": None}
    # An answer from any channel counts as being surveyed.
    with scopes_disabled():
        Contact.objects.filter(pk=ann.pk).update(last_responded_at=MONDAY + timedelta(days=60))
    assert reasons(org_a, second, at=MONDAY + timedelta(days=61)) == {"Ann": SkipReason.FATIGUED}


def test_it_caps_the_contacts_asked_per_account_within_one_run_and_over_the_window(org_a):
    big = AccountFactory(organization=org_a, name="Big")
    for n in range(5):
        ContactFactory(account=big, name=f"big-{n}")
    half = AccountFactory(organization=org_a, name="Half")
    ContactFactory(account=half, name="half-asked", last_surveyed_at=MONDAY - timedelta(days=3))
    ContactFactory(account=half, name="half-0")
    ContactFactory(account=half, name="half-1")
    ContactFactory(account__organization=org_a, account__name="Solo", name="alone")
    programme = ProgrammeFactory(
        survey__organization=org_a, daily_cap=100, account_cap=2, account_cap_days=30
    )
    report = plan(org_a, programme)
    with scopes_disabled():
        planned = Counter(
            Invitation.objects.filter(state=S.PLANNED).values_list("account__name", flat=True)
        )
    assert planned == {"Big": 2, "Half": 1, "Solo": 1}
    assert report.planned == 4
    # The account's places are all taken now, across programmes.
    other = ProgrammeFactory(survey__organization=org_a, daily_cap=100, account_cap=2)
    after = reasons(org_a, other)
    assert {after[f"big-{n}"] for n in range(5)} <= {SkipReason.ACCOUNT_CAP, SkipReason.FATIGUED}
    assert after["half-0"] in {SkipReason.ACCOUNT_CAP, SkipReason.FATIGUED}
    # Places free up once the window has passed (fatigue aside).
    with scopes_disabled():
        SurveySettings.objects.update_or_create(organization=org_a, defaults={"fatigue_days": 0})
    assert send_due(org_a, MONDAY.replace(hour=18)).sent == 4
    assert reasons(org_a, other, at=MONDAY + timedelta(days=10))["big-4"] == (
        SkipReason.ACCOUNT_CAP
    )
    assert reasons(org_a, other, at=MONDAY + timedelta(days=31))["big-4"] is None


def test_it_looks_further_down_the_list_when_the_account_cap_drops_the_first(org_a, monkeypatch):
    crowded = AccountFactory(organization=org_a, name="Crowded")
    for n in range(30):
        ContactFactory(account=crowded, name=f"crowded-{n}")  # never surveyed: first in line
    for n in range(5):
        ContactFactory(
            account__organization=org_a,
            name=f"other-{n}",
            last_surveyed_at=MONDAY - timedelta(days=400 + n),
        )
    # A prefix of exactly the number wanted, then everything.
    monkeypatch.setattr(scheduler, "ACCOUNT_CAP_PREFIX", (1, 0))
    programme = ProgrammeFactory(survey__organization=org_a, daily_cap=5, account_cap=1)
    assert plan(org_a, programme).planned == 5
    with scopes_disabled():
        names = sorted(
            Invitation.objects.filter(state=S.PLANNED).values_list("contact__name", flat=True)
        )
    assert [name.split("-")[0] for name in names] == ["crowded"] + ["other"] * 4


def test_it_waits_out_the_tenure_minimum(org_a):
    ContactFactory(
        account__organization=org_a, name="New", account__signed_up_on=datetime.date(2026, 2, 20)
    )
    ContactFactory(account__organization=org_a, name="Unknown")  # no sign-up date: not held
    programme = ProgrammeFactory(survey__organization=org_a, min_tenure_days=30)
    assert reasons(org_a, programme) == {"New": SkipReason.TENURE, "Unknown": None}
    # Signed up 20 February: 30 days of tenure on 22 March.
    assert reasons(org_a, programme, at=MONDAY + timedelta(days=19))["New"] == SkipReason.TENURE
    assert reasons(org_a, programme, at=MONDAY + timedelta(days=20)) == {
        "New": None,
        "Unknown": None,
    }


def test_it_limits_eligibility_to_the_segment(org_a):
    segment = SegmentFactory(
        organization=org_a,
        rules={
            "match": "all",
            "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
        },
    )
    inside = ContactFactory(account__organization=org_a, name="In", account__plan="enterprise")
    outside = ContactFactory(account__organization=org_a, name="Out", account__plan="growth")
    programme = ProgrammeFactory(survey__organization=org_a, segment=segment, account_cap=3)
    assert reasons(org_a, programme) == {"In": None}
    with scope(organization=org_a):
        assert list(
            eligibility.eligible_contacts(organization=org_a, programme=programme, at=MONDAY)
        ) == [inside]
        assert (
            eligibility.contact_skip_reason(
                organization=org_a, programme=programme, contact=outside, at=MONDAY
            )
            == eligibility.NOT_IN_SEGMENT
        )
    assert plan(org_a, programme).planned == 1
    with scopes_disabled():
        assert list(Invitation.objects.values_list("contact_id", flat=True)) == [inside.pk]


def test_it_counts_an_open_invitation_of_another_programme_as_fatigue(org_a):
    invitation = InvitationFactory(
        organization=org_a, programme__survey__organization=org_a, contact__name="Ann"
    )
    other = ProgrammeFactory(survey__organization=org_a)
    assert reasons(org_a, other) == {"Ann": SkipReason.FATIGUED}
    assert reasons(org_a, invitation.programme) == {"Ann": SkipReason.ALREADY_PLANNED}


def test_it_warns_when_the_segment_under_covers_low_health_accounts_and_arr(org_a):
    for n in range(6):
        ContactFactory(
            account__organization=org_a,
            account__plan="growth",
            account__arr=10_000,
            account__health_score=80,
            name=f"healthy-{n}",
        )
    for n in range(4):
        ContactFactory(
            account__organization=org_a,
            account__plan="enterprise",
            account__arr=200_000,
            account__health_score=20,
            name=f"unhappy-{n}",
        )
    growth_only = SegmentFactory(
        organization=org_a,
        rules={"match": "all", "conditions": [{"field": "plan", "op": "eq", "value": "growth"}]},
    )
    biased = ProgrammeFactory(survey__organization=org_a, segment=growth_only)
    everyone = ProgrammeFactory(survey__organization=org_a)
    with scope(organization=org_a):
        report = selectors.programme_coverage(org_a, biased)
        fair = selectors.programme_coverage(org_a, everyone)
    assert (report.accounts, report.accounts_covered) == (10, 6)
    assert (report.low_health, report.low_health_covered) == (4, 0)
    assert report.arr_share == pytest.approx(60_000 / 860_000)
    assert len(report.warnings) == 2
    assert "0% of low-health accounts" in report.warnings[0]
    assert "60% of all accounts" in report.warnings[0]
    assert "7% of ARR" in report.warnings[1]
    assert fair.warnings == []
    assert (fair.account_share, fair.low_health_share, fair.arr_share) == (1.0, 1.0, 1.0)


def test_it_warns_when_the_segment_filters_on_health(org_a):
    ContactFactory(account__organization=org_a, account__health_score=90)
    healthy = SegmentFactory(
        organization=org_a,
        rules={
            "match": "all",
            "conditions": [{"field": "health_score", "op": "gte", "value": "50"}],
        },
    )
    programme = ProgrammeFactory(survey__organization=org_a, segment=healthy)
    with scope(organization=org_a):
        report = eligibility.coverage(org_a, programme)
    assert any("filters on health" in warning for warning in report.warnings)


def test_it_does_not_count_suppressed_contacts_as_coverage(org_a):
    ContactFactory(
        account__organization=org_a, account__health_score=10, suppressed_reason="bounced"
    )
    ContactFactory(account__organization=org_a, account__health_score=90)
    ContactFactory(account__organization=org_a, account__health_score=90)
    programme = ProgrammeFactory(survey__organization=org_a)
    with scope(organization=org_a):
        report = eligibility.coverage(org_a, programme)
    assert (report.low_health, report.low_health_covered) == (1, 0)
    assert report.warnings
    assert "low-health" in report.warnings[0]

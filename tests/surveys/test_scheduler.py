"""The send scheduler with time frozen: drip and cap, the send window in the contact's time
zone, triggers, reminders, dispatch by compare-and-set with retries, answers, forecast."""

from datetime import UTC, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django_scopes import scope, scopes_disabled

from accounts.models import Contact
from responses.services import response_record
from surveys import scheduler, tasks
from surveys.models import Invitation, InvitationState, SkipReason, SurveySettings
from tests.accounts.factories import ContactFactory
from tests.surveys.factories import InvitationFactory, ProgrammeFactory

pytestmark = pytest.mark.django_db

S = InvitationState
MONDAY = datetime(2026, 3, 2, 0, 5, tzinfo=UTC)  # 2 March 2026 is a Monday
SATURDAY = datetime(2026, 3, 7, 3, 0, tzinfo=UTC)


def contacts(organization, n, **fields):
    return [ContactFactory(account__organization=organization, **fields) for _ in range(n)]


def plan(organization, programme, at=None):
    with scope(organization=organization):
        return scheduler.programme_plan(organization=organization, programme=programme, at=at)


def dispatch(organization, now=None, batch=200):
    with scope(organization=organization):
        return scheduler.invitations_dispatch(organization=organization, now=now, batch=batch)


def invitations(**filters):
    with scopes_disabled():
        return list(Invitation.objects.filter(**filters).order_by("planned_for", "pk"))


# --- Drip and cap ---------------------------------------------------------------------------


def test_it_drips_the_eligible_population_evenly_over_the_cycle(org_a):
    contacts(org_a, 90)
    programme = ProgrammeFactory(survey__organization=org_a, every_days=30)
    with scopes_disabled():
        SurveySettings.objects.create(organization=org_a, fatigue_days=30)
    asked, first_day = set(), set()
    for day in range(30):
        tick = MONDAY + timedelta(days=day)
        with time_machine.travel(tick, tick=False):
            report = plan(org_a, programme)
            assert report.planned == 3, f"day {day}"
            assert report.quota == 3
            assert report.population == 90
            today = invitations(programme=programme, state=S.PLANNED)
            if day == 0:
                # Spread evenly over the 9–17 window (UTC is the organization's zone).
                assert [i.planned_for.strftime("%H:%M") for i in today] == [
                    "10:20",
                    "13:00",
                    "15:40",
                ]
                first_day = {i.contact_id for i in today}
            asked |= {i.contact_id for i in today}
        with time_machine.travel(tick.replace(hour=18), tick=False):
            assert dispatch(org_a).sent == 3
    assert len(asked) == 90
    assert len(mail.outbox) == 90
    # Nobody is due again before every_days (and fatigue_days) have passed since their send.
    with time_machine.travel(MONDAY + timedelta(days=30), tick=False):
        assert plan(org_a, programme).planned == 0
    # Then the next cycle starts with those asked first.
    with time_machine.travel(MONDAY + timedelta(days=31), tick=False):
        assert plan(org_a, programme).planned == 3
        again = {i.contact_id for i in invitations(programme=programme, state=S.PLANNED)}
    assert again == first_day


def test_it_plans_the_daily_cap(org_a):
    contacts(org_a, 25)
    programme = ProgrammeFactory(survey__organization=org_a, daily_cap=10)
    with time_machine.travel(MONDAY, tick=False):
        report = plan(org_a, programme)
    assert report.planned == 10
    assert report.quota == 10
    assert report.population is None
    planned = invitations(programme=programme, state=S.PLANNED)
    # Longest unsurveyed first: never-surveyed contacts before any other.
    assert len(planned) == 10
    assert all(i.planned_for.hour in range(9, 17) for i in planned)


def test_it_picks_the_contacts_surveyed_longest_ago_first(org_a):
    old, older, never = contacts(org_a, 3)
    with scopes_disabled():
        Contact.objects.filter(pk=old.pk).update(last_surveyed_at=MONDAY - timedelta(days=200))
        Contact.objects.filter(pk=older.pk).update(last_surveyed_at=MONDAY - timedelta(days=400))
    programme = ProgrammeFactory(survey__organization=org_a, daily_cap=2)
    with time_machine.travel(MONDAY, tick=False):
        plan(org_a, programme)
    assert {i.contact_id for i in invitations(programme=programme)} == {never.pk, older.pk}


def test_it_plans_once_when_ticked_twice(org_a):
    contacts(org_a, 30)
    contacts(org_a, 2, suppressed_reason="unsubscribed")
    programme = ProgrammeFactory(survey__organization=org_a, every_days=10)
    with time_machine.travel(MONDAY, tick=False):
        first = plan(org_a, programme)
    with time_machine.travel(MONDAY + timedelta(minutes=15), tick=False):
        second = plan(org_a, programme)
    with time_machine.travel(MONDAY + timedelta(minutes=30), tick=False):
        third = plan(org_a, programme)
    assert (first.planned, second.planned, third.planned) == (3, 0, 0)
    assert first.skipped_by_reason == {SkipReason.SUPPRESSED: 2}
    assert len(invitations(programme=programme, state=S.PLANNED)) == 3
    assert len(invitations(programme=programme, state=S.SKIPPED)) == 2
    # The same instant again (a redelivered task) plans nothing either.
    with time_machine.travel(MONDAY, tick=False):
        assert plan(org_a, programme).planned == 0
    assert len(invitations(programme=programme)) == 5


def test_it_records_a_skip_once_a_cycle_not_once_a_tick(org_a):
    contacts(org_a, 1, suppressed_reason="bounced")
    contacts(org_a, 20)
    programme = ProgrammeFactory(survey__organization=org_a, every_days=20)
    for day in range(3):
        with time_machine.travel(MONDAY + timedelta(days=day), tick=False):
            plan(org_a, programme)
    assert len(invitations(programme=programme, state=S.SKIPPED)) == 1


def test_it_caps_how_many_skips_one_tick_records(org_a, monkeypatch):
    contacts(org_a, 6, suppressed_reason="unsubscribed")
    contacts(org_a, 1)
    monkeypatch.setattr(scheduler, "SKIP_RECORD_LIMIT", 4)
    programme = ProgrammeFactory(survey__organization=org_a, every_days=1)
    with time_machine.travel(MONDAY, tick=False):
        report = plan(org_a, programme)
    assert report.planned == 1
    assert report.skipped_by_reason == {SkipReason.SUPPRESSED: 4}
    assert report.skips_capped


def test_it_plans_nothing_for_a_paused_programme_or_one_without_email(org_a):
    contacts(org_a, 5)
    paused = ProgrammeFactory(survey__organization=org_a, is_active=False)
    in_app = ProgrammeFactory(survey__organization=org_a, channel_email=False, channel_in_app=True)
    with time_machine.travel(MONDAY, tick=False):
        assert plan(org_a, paused).planned == 0
        assert plan(org_a, in_app).planned == 0


# --- The send window --------------------------------------------------------------------


def test_it_plans_inside_the_window_in_the_contacts_time_zone(org_a):
    tokyo = ZoneInfo("Asia/Tokyo")
    [contact] = contacts(org_a, 1, timezone="Asia/Tokyo")
    programme = ProgrammeFactory(survey__organization=org_a, business_days_only=True)
    # Saturday 12:00 in Tokyo: business days only, so Monday.
    with time_machine.travel(SATURDAY, tick=False):
        assert plan(org_a, programme).planned == 1
    [invitation] = invitations(contact=contact)
    local = invitation.planned_for.astimezone(tokyo)
    assert local.date().isoformat() == "2026-03-09"
    assert local.strftime("%A") == "Monday"
    assert 9 <= local.hour < 17
    assert local.strftime("%H:%M") == "13:00"  # the middle of the one slot


def test_it_falls_back_to_the_organizations_time_zone(org_a):
    with scopes_disabled():
        org_a.timezone = "America/New_York"
        org_a.save()
    [contact] = contacts(org_a, 1, timezone="")
    programme = ProgrammeFactory(survey__organization=org_a)
    with time_machine.travel(MONDAY, tick=False):  # Sunday 19:05 in New York
        plan(org_a, programme)
    [invitation] = invitations(contact=contact)
    local = invitation.planned_for.astimezone(ZoneInfo("America/New_York"))
    assert local.strftime("%Y-%m-%d %H:%M") == "2026-03-02 13:00"


def test_it_spreads_into_what_is_left_of_todays_window(org_a):
    contacts(org_a, 2)
    programme = ProgrammeFactory(survey__organization=org_a, daily_cap=2)
    with time_machine.travel(MONDAY.replace(hour=13, minute=0), tick=False):
        plan(org_a, programme)
    assert [i.planned_for.strftime("%H:%M") for i in invitations(programme=programme)] == [
        "14:00",
        "16:00",
    ]


# --- Touchpoint triggers --------------------------------------------------------------------


def test_it_schedules_a_triggered_survey_after_its_delay(org_a):
    [contact] = contacts(org_a, 1, timezone="Europe/Berlin")
    ProgrammeFactory(
        survey__organization=org_a,
        name="Onboarding",
        triggers=[{"event": "onboarding_completed", "delay_days": 3}],
        business_days_only=True,
    )
    occurred = datetime(2026, 3, 3, 21, 30, tzinfo=UTC)  # Tuesday 22:30 in Berlin
    with time_machine.travel(occurred, tick=False), scope(organization=org_a):
        event = scheduler.touchpoint_record(
            organization=org_a,
            contact=contact,
            name="onboarding_completed",
            occurred_at=occurred,
            external_id="evt-1",
        )
        again = scheduler.touchpoint_record(
            organization=org_a, contact=contact, name="onboarding_completed", external_id="evt-1"
        )
    assert again.pk == event.pk
    [invitation] = invitations(contact=contact)
    assert event.invitation_id == invitation.pk
    assert invitation.trigger == "onboarding_completed"
    assert invitation.state == S.PLANNED
    # Three days later is Friday 22:30 in Berlin: outside the window, so Monday 09:00.
    local = invitation.planned_for.astimezone(ZoneInfo("Europe/Berlin"))
    assert local.strftime("%A %H:%M") == "Monday 09:00"
    assert event.outcome == "Onboarding: scheduled for 2026-03-09 09:00 Europe/Berlin"


def test_it_records_why_a_triggered_survey_was_skipped(org_a):
    [contact] = contacts(org_a, 1, last_surveyed_at=MONDAY - timedelta(days=10))
    programme = ProgrammeFactory(
        survey__organization=org_a,
        name="Renewal",
        triggers=[{"event": "renewal_upcoming", "delay_days": 0}],
    )
    with time_machine.travel(MONDAY, tick=False), scope(organization=org_a):
        event = scheduler.touchpoint_record(
            organization=org_a, contact=contact, name="renewal_upcoming"
        )
        other = scheduler.touchpoint_record(organization=org_a, contact=contact, name="login")
    assert event.outcome == "Renewal: skipped, surveyed recently (fatigue)"
    assert event.invitation_id is None
    [skipped] = invitations(programme=programme)
    assert (skipped.state, skipped.skip_reason, skipped.trigger) == (
        S.SKIPPED,
        SkipReason.FATIGUED,
        "renewal_upcoming",
    )
    assert other.outcome == "No active programme is triggered by it."


# --- Dispatch -------------------------------------------------------------------------------


def test_it_sends_due_invitations_once_claimed_by_compare_and_set(org_a):
    contacts(org_a, 4)
    programme = ProgrammeFactory(survey__organization=org_a, daily_cap=4)
    with time_machine.travel(MONDAY, tick=False):
        plan(org_a, programme)
    later = MONDAY.replace(hour=12)
    # Only what is due by noon goes: the slots are 10:00, 12:00, 14:00, 16:00.
    first = dispatch(org_a, now=later)
    assert (first.sent, first.more) == (2, False)
    again = dispatch(org_a, now=later)
    assert again.sent == 0
    assert len(mail.outbox) == 2
    sent = invitations(state=S.SENT)
    assert [i.sent_at for i in sent] == [later, later]
    with scopes_disabled():
        surveyed = Contact.objects.filter(pk__in=[i.contact_id for i in sent])
        assert {c.last_surveyed_at for c in surveyed} == {later}


def test_it_does_not_send_what_another_dispatcher_claimed(org_a):
    invitation = InvitationFactory(organization=org_a, programme__survey__organization=org_a)
    with time_machine.travel(MONDAY, tick=False), scope(organization=org_a):
        # Another dispatcher wins the compare-and-set between our listing and our claim.
        assert (
            Invitation.objects.filter(pk=invitation.pk, state=S.PLANNED).update(state=S.SENDING)
            == 1
        )
        outcome = scheduler.invitation_send_one(
            organization=org_a, invitation_id=invitation.pk, now=MONDAY, fatigue_days=90
        )
    assert outcome == "lost"
    assert mail.outbox == []


def test_it_checks_suppression_again_just_before_sending(org_a):
    invitation = InvitationFactory(
        organization=org_a, programme__survey__organization=org_a, planned_for=MONDAY
    )
    with scopes_disabled():
        Contact.objects.filter(pk=invitation.contact_id).update(suppressed_reason="complained")
    with time_machine.travel(MONDAY, tick=False):
        report = dispatch(org_a, now=MONDAY + timedelta(minutes=1))
    assert report.suppressed == 1
    assert mail.outbox == []
    [invitation] = invitations(pk=invitation.pk)
    assert (invitation.state, invitation.skip_reason) == (S.SUPPRESSED, SkipReason.SUPPRESSED)


def test_it_retries_a_failed_send_on_a_capped_schedule_then_fails(org_a):
    programme = ProgrammeFactory(
        survey__organization=org_a, window_start_hour=0, window_end_hour=24
    )
    invitation = InvitationFactory(organization=org_a, programme=programme, planned_for=MONDAY)
    start = MONDAY.replace(hour=10)
    boom = mock.patch("surveys.emails.invitation_send", side_effect=OSError("ESP down"))
    with boom:
        assert dispatch(org_a, now=start).retried == 1
        [after_one] = invitations(pk=invitation.pk)
        assert after_one.state == S.PLANNED
        assert after_one.attempts == 1
        assert after_one.planned_for == start + timedelta(minutes=5)
        assert after_one.last_error == "OSError: ESP down"
        # Not due before its time.
        assert dispatch(org_a, now=start + timedelta(minutes=4)).retried == 0
        assert dispatch(org_a, now=start + timedelta(minutes=5)).retried == 1
        [after_two] = invitations(pk=invitation.pk)
        assert after_two.planned_for == start + timedelta(minutes=35)
        assert dispatch(org_a, now=start + timedelta(minutes=35)).failed == 1
    [failed] = invitations(pk=invitation.pk)
    assert (failed.state, failed.attempts, failed.last_error) == (S.FAILED, 3, "OSError: ESP down")
    assert dispatch(org_a, now=start + timedelta(days=1)).sent == 0


def test_it_fails_an_invitation_a_dead_worker_left_sending(org_a):
    invitation = InvitationFactory(
        organization=org_a,
        programme__survey__organization=org_a,
        state=S.SENDING,
        planned_for=MONDAY,
    )
    dispatch(org_a, now=MONDAY + timedelta(minutes=5))
    assert invitations(pk=invitation.pk)[0].state == S.SENDING
    dispatch(org_a, now=MONDAY + timedelta(minutes=16))
    assert invitations(pk=invitation.pk)[0].state == S.FAILED


def test_it_dispatches_in_batches_through_the_task(org_a):
    programme = ProgrammeFactory(survey__organization=org_a)
    for _ in range(5):
        InvitationFactory(organization=org_a, programme=programme, planned_for=MONDAY)
    with time_machine.travel(MONDAY + timedelta(minutes=1), tick=False):
        # In-process mode loops over the batches itself.
        assert tasks.dispatch_due.delay(org_a.pk, 2).get() == 5
        assert tasks.dispatch_tick.delay().get() == 0
    assert len(mail.outbox) == 5


# --- Reminders ------------------------------------------------------------------------------


def test_it_reminds_once_and_only_the_unanswered(org_a):
    programme = ProgrammeFactory(survey__organization=org_a, reminder_after_days=3)
    sent_at = MONDAY.replace(hour=10)
    waiting = InvitationFactory(
        organization=org_a, programme=programme, state=S.OPENED, sent_at=sent_at
    )
    answered = InvitationFactory(
        organization=org_a,
        programme=programme,
        state=S.ANSWERED,
        sent_at=sent_at,
        answered_at=sent_at + timedelta(hours=1),
    )
    too_soon = InvitationFactory(
        organization=org_a, programme=programme, state=S.SENT, sent_at=sent_at + timedelta(days=1)
    )
    with scope(organization=org_a):
        at_night = sent_at + timedelta(days=3, hours=10)  # 20:00: outside the window
        assert scheduler.reminders_plan(organization=org_a, now=at_night) == 0
        later = sent_at + timedelta(days=3, hours=1)
        assert scheduler.reminders_plan(organization=org_a, now=later) == 1
        assert scheduler.reminders_plan(organization=org_a, now=later) == 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [waiting.contact.email]
    assert "nps-reminder" in mail.outbox[0].tags
    assert invitations(pk=waiting.pk)[0].reminder_sent_at == later
    assert invitations(pk=answered.pk)[0].reminder_sent_at is None
    assert invitations(pk=too_soon.pk)[0].reminder_sent_at is None


# --- Answers --------------------------------------------------------------------------------


def test_it_marks_the_invitation_answered_when_its_response_is_recorded(
    org_a, django_capture_on_commit_callbacks
):
    invitation = InvitationFactory(
        organization=org_a,
        programme__survey__organization=org_a,
        state=S.OPENED,
        sent_at=MONDAY,
    )
    with scope(organization=org_a), django_capture_on_commit_callbacks(execute=True):
        response, _ = response_record(
            organization=org_a,
            channel="email",
            score=9,
            email=invitation.contact.email,
            invitation_id=invitation.pk,
        )
    [answered] = invitations(pk=invitation.pk)
    assert answered.state == S.ANSWERED
    assert answered.response_id == response.pk
    assert answered.answered_at is not None


# --- The beat -------------------------------------------------------------------------------


def test_it_ticks_every_tenants_programmes_in_their_own_scope(org_a, org_b):
    contacts(org_a, 30)
    contacts(org_b, 60)
    a = ProgrammeFactory(survey__organization=org_a, every_days=30)
    b = ProgrammeFactory(survey__organization=org_b, every_days=30)
    with time_machine.travel(MONDAY, tick=False):
        assert tasks.tick.delay().get() == 2
    assert len(invitations(programme=a, organization=org_a)) == 1
    assert len(invitations(programme=b, organization=org_b)) == 2
    with scopes_disabled():
        assert not Invitation.objects.filter(programme=a).exclude(contact__organization=org_a)


# --- Forecast -------------------------------------------------------------------------------


def test_it_forecasts_sends_and_answers_per_day(org_a):
    contacts(org_a, 90)
    programme = ProgrammeFactory(survey__organization=org_a, every_days=30)
    with time_machine.travel(MONDAY, tick=False), scope(organization=org_a):
        forecast = scheduler.programme_forecast(organization=org_a, programme=programme)
        assert [d.sends for d in forecast.days] == [3] * 14
        assert [d.expected_answers for d in forecast.days] == [0.9] * 14
        assert (forecast.answer_rate, forecast.from_history) == (0.3, False)
        # Planned invitations count once, on their day.
        scheduler.programme_plan(organization=org_a, programme=programme)
        again = scheduler.programme_forecast(organization=org_a, programme=programme)
        assert [d.sends for d in again.days] == [3] * 14


def test_it_forecasts_business_days_and_the_answer_rate_from_history(org_a):
    contacts(org_a, 70)
    programme = ProgrammeFactory(survey__organization=org_a, daily_cap=5, business_days_only=True)
    old = MONDAY - timedelta(days=40)
    for answered in (True, False, False, False):
        InvitationFactory(
            organization=org_a,
            programme=programme,
            state=S.ANSWERED if answered else S.SENT,
            sent_at=old,
            planned_for=old,
            answered_at=old if answered else None,
        )
    with time_machine.travel(SATURDAY, tick=False), scope(organization=org_a):
        forecast = scheduler.programme_forecast(organization=org_a, programme=programme, days=7)
    assert forecast.answer_rate == 0.25
    assert forecast.from_history
    # Saturday and Sunday's batches go out on Monday.
    assert [(d.day.strftime("%a"), d.sends) for d in forecast.days] == [
        ("Sat", 0),
        ("Sun", 0),
        ("Mon", 15),
        ("Tue", 5),
        ("Wed", 5),
        ("Thu", 5),
        ("Fri", 5),
    ]
    assert forecast.days[2].expected_answers == 3.8


def test_it_forecasts_no_more_sends_than_the_pool_holds(org_a):
    contacts(org_a, 8)
    programme = ProgrammeFactory(survey__organization=org_a, daily_cap=5)
    with time_machine.travel(MONDAY, tick=False), scope(organization=org_a):
        forecast = scheduler.programme_forecast(organization=org_a, programme=programme, days=4)
    assert [d.sends for d in forecast.days] == [5, 3, 0, 0]


def test_it_keeps_other_tenants_out_of_reach(org_a, org_b):
    contacts(org_b, 5)
    programme = ProgrammeFactory(survey__organization=org_a)
    with time_machine.travel(MONDAY, tick=False):
        assert plan(org_a, programme).planned == 0
    assert invitations() == []

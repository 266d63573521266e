"""The invitation rollup (InvitationDay) gives exactly the raw response rate, after a
rebuild and through sending, tracking, answering, in-app asks and deletions."""

import datetime
import io

from anymail.signals import AnymailTrackingEvent
from django.core.management import call_command
from django.utils import timezone
from django_scopes import scope

from accounts.models import Contact
from insights import metrics, selectors, services
from insights.metrics import Filters
from insights.models import InvitationDay
from surveys import scheduler, tracking
from surveys.models import Invitation, InvitationState
from tests.accounts.factories import SegmentFactory
from tests.insights.factories import at
from tests.surveys.factories import InvitationFactory, ProgrammeFactory

S = InvitationState
TODAY = timezone.localdate()


def filter_sets(survey_id):
    year = Filters(since=TODAY - datetime.timedelta(days=400), until=TODAY)
    return [
        year,
        year.replace(channel="email"),
        year.replace(channel="in_app"),
        year.replace(survey_id=survey_id),
        Filters(
            since=TODAY - datetime.timedelta(days=40), until=TODAY - datetime.timedelta(days=3)
        ),
        Filters(since=metrics._default_range(TODAY)[0], until=TODAY),
    ]


def assert_rollup_equals_raw(org, survey_id):
    with scope(organization=org.pk):
        for filters in filter_sets(survey_id):
            assert selectors._invitation_totals(org, filters) == selectors._invitation_totals(
                org, filters, raw=True
            ), filters


def assert_incremental_equals_rebuild(org):
    def state():
        return sorted(
            InvitationDay.objects.values_list(
                "day", "survey_id", "channel", "delivered", "answered"
            )
        )

    with scope(organization=org.pk):
        kept = state()
        services.rollup_rebuild_invitations(org.pk)
        assert kept == state()


def world(org):
    """Invitations in every state the rate tells apart, over the past year, on two
    channels, one of them of another survey."""
    programme = ProgrammeFactory(survey__organization=org)
    other = ProgrammeFactory(survey__organization=org)
    made = []
    for days, state, answered, channel, of in [
        (300, S.ANSWERED, True, "email", programme),
        (200, S.DELIVERED, False, "email", programme),
        (200, S.OPENED, False, "in_app", programme),
        (120, S.BOUNCED, False, "email", programme),
        (60, S.SENT, False, "email", other),
        (30, S.OPENED, True, "email", programme),  # answered, state not moved on
        (10, S.FAILED, False, "email", programme),
        (2, S.ANSWERED, True, "in_app", other),
        (1, S.SKIPPED, False, "in_app", programme),
    ]:
        moment = at(TODAY - datetime.timedelta(days=days), hour=23 if days % 2 else 0)
        made.append(
            InvitationFactory(
                organization=org,
                programme=of,
                contact__account__organization=org,
                state=state,
                channel=channel,
                planned_for=moment,
                sent_at=moment,
                answered_at=moment if answered else None,
                message_id=f"msg-{org.pk}-{days}-{state}",
            )
        )
    # Planned, never sent: never counted.
    made.append(InvitationFactory(organization=org, programme=programme))
    return programme, made


def tracked(invitation, event_type):
    return AnymailTrackingEvent(
        event_type=event_type,
        message_id=invitation.message_id,
        event_id=f"{event_type}-{invitation.pk}",
        timestamp=timezone.now(),
        recipient=invitation.contact.email,
    )


def test_it_rebuilds_the_invitation_rollup_equal_to_raw(org_a, org_b):
    programme, _ = world(org_a)
    other_programme, _ = world(org_b)
    call_command("rebuild_insights", stdout=io.StringIO())
    with scope(organization=org_a.pk):
        assert InvitationDay.objects.filter(organization=org_a).exists()
        year = Filters(since=TODAY - datetime.timedelta(days=400), until=TODAY)
        # Answered, delivered, opened, sent, opened and answered, answered in-app: 6
        # delivered, 3 answered; the bounced, failed, skipped and planned ones are not.
        assert selectors._invitation_totals(org_a, year) == (6, 3)
    assert_rollup_equals_raw(org_a, programme.survey_id)
    assert_rollup_equals_raw(org_b, other_programme.survey_id)


def test_it_keeps_the_invitation_rollup_equal_to_raw_through_changes(
    org_a, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    programme, made = world(org_a)
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    assert_rollup_equals_raw(org_a, programme.survey_id)

    # The planned invitation goes out today.
    planned = made[-1]
    with scope(organization=org_a.pk), capture(execute=True):
        outcome = scheduler.invitation_send_one(
            organization=org_a,
            invitation_id=planned.pk,
            now=timezone.now(),
            fatigue_days=0,
        )
    assert outcome == "sent"
    assert_rollup_equals_raw(org_a, programme.survey_id)

    # The ESP bounces a delivered one and reports another delivered.
    delivered, sent = made[1], made[4]
    for invitation, event_type in ((delivered, "bounced"), (sent, "delivered")):
        with capture(execute=True):
            tracking.event_record(event=tracked(invitation, event_type), esp_name="postmark")
    with scope(organization=org_a.pk):
        assert Invitation.objects.get(pk=delivered.pk).state == S.BOUNCED
    assert_rollup_equals_raw(org_a, programme.survey_id)

    # An opened one is answered.
    with scope(organization=org_a.pk), capture(execute=True):
        tracking.invitation_mark_answered(invitation=made[2], response_id=1)
    assert_rollup_equals_raw(org_a, programme.survey_id)

    # A contact is erased (its invitations go with it), and a survey's programme deleted.
    with scope(organization=org_a.pk), capture(execute=True):
        Contact.objects.filter(pk=made[0].contact_id).delete()
    assert_rollup_equals_raw(org_a, programme.survey_id)
    with scope(organization=org_a.pk), capture(execute=True):
        Invitation.objects.filter(programme=programme).delete()
    assert_rollup_equals_raw(org_a, programme.survey_id)
    assert_incremental_equals_rebuild(org_a)


def test_it_reads_the_invitations_for_filters_the_rollup_cannot_serve(org_a):
    programme, made = world(org_a)
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
        segment = SegmentFactory(
            organization=org_a,
            rules={"match": "all", "conditions": [{"field": "plan", "op": "eq", "value": "x"}]},
        )
        year = Filters(since=TODAY - datetime.timedelta(days=400), until=TODAY)
        # No account is on plan "x": the segment's rate counts none of the invitations.
        assert selectors._invitation_totals(org_a, year.replace(segment_id=segment.pk)) == (0, 0)
        assert selectors._invitation_totals(org_a, year) == (6, 3)

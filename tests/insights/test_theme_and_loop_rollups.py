"""The themes rollup (ThemeDay) and the loop rollup (LoopFollowUp) give exactly the raw
themes panel and loop health, after a rebuild and through analyses, re-analyses, score
edits, deletions, erasure and every follow-up change that moves a loop figure."""

import datetime
import io

from django.core.management import call_command
from django.utils import timezone
from django_scopes import scope

from accounts import services as account_services
from followups import services as followup_services
from followups.models import FollowUp, Status
from insights import metrics, selectors, services
from insights.metrics import Filters
from insights.models import LoopDay, LoopFollowUp, ThemeDay
from responses import services as response_services
from responses.models import Response
from responses.services import responses_record
from tests.accounts.factories import AccountFactory, ContactFactory, SegmentFactory
from tests.insights.factories import FollowUpFactory, ResponseFactory, at

TODAY = timezone.localdate()
NOW = timezone.now()


def filter_sets(org):
    year = Filters(since=TODAY - datetime.timedelta(days=400), until=TODAY)
    return [
        year,
        year.replace(period="week"),
        year.replace(channel="api"),
        year.replace(channel="email"),
        Filters(since=TODAY - datetime.timedelta(days=60), until=TODAY, period="quarter"),
        Filters(since=metrics._default_range(TODAY)[0], until=TODAY),
    ]


def loop_figures(loop):
    """Loop health without the one figure that reads the clock twice (overdue counts
    follow-ups due before now, and now moves between the two reads)."""
    return {**loop.__dict__, "overdue": None}


def assert_rollups_equal_raw(org):
    with scope(organization=org.pk):
        for filters in filter_sets(org):
            assert selectors.themes(org, filters) == selectors.themes(org, filters, raw=True), (
                filters
            )
            assert loop_figures(selectors.loop_health(org, filters)) == loop_figures(
                selectors.loop_health(org, filters, raw=True)
            ), filters


def assert_incremental_equals_rebuild(org):
    def state():
        return (
            sorted(ThemeDay.objects.values_list(
                "day", "survey_id", "channel", "theme", "mentions", "detractors", "promoters"
            )),
            sorted(LoopFollowUp.objects.values_list(
                "followup_id", "response_id", "submitted_at", "score", "status", "outcome",
                "due_at", "created_at", "first_contact_at", "closed_at", "in_sla",
                "contact_seconds", "close_seconds",
            )),
            sorted(LoopDay.objects.values_list(
                "day", "survey_id", "channel", "outcome", "followups", "in_sla", "open"
            )),
        )  # fmt: skip

    with scope(organization=org.pk):
        kept = state()
        services.rollup_rebuild(org.pk)
        assert kept == state()


def world(org):
    """Commented answers across days and channels, with follow-ups in every state."""
    account = AccountFactory(organization=org, arr=5000)
    contact = ContactFactory(organization=org, account=account)
    made = []
    for days, score, channel, comment in [
        (300, 2, "email", "Too expensive and slow"),
        (200, 9, "api", "Great support, love it"),
        (120, 4, "api", "Slow, crashes daily"),
        (50, 3, "email", "The price is too high"),
        (31, 10, "api", "Awesome"),
        (31, 6, "api", "Billing is confusing"),
        (2, 1, "link", "Support never replied"),
    ]:
        made.append(
            ResponseFactory(
                organization=org,
                contact=contact,
                account=account,
                score=score,
                channel=channel,
                comment=comment,
                submitted_at=at(TODAY - datetime.timedelta(days=days), hour=23 if days % 2 else 0),
            )
        )
    with scope(organization=org.pk):
        from responses.analysis import responses_analyze

        responses_analyze(organization=org, response_ids=[r.pk for r in made])
    for response, (status, outcome, contact_hours, close_hours) in zip(
        [r for r in made if r.score <= 6],
        [
            (Status.CLOSED, "resolved", 3, 30),
            (Status.NEW, "", None, None),
            (Status.WAITING, "", 40, None),
            (Status.CLOSED, "churn_risk", 5, 70),
            (Status.IN_PROGRESS, "", None, None),
        ],
        strict=True,
    ):
        opened = response.submitted_at
        FollowUpFactory(
            response=response,
            status=status,
            outcome=outcome,
            first_contact_at=opened + datetime.timedelta(hours=contact_hours)
            if contact_hours
            else None,
            closed_at=opened + datetime.timedelta(hours=close_hours) if close_hours else None,
        )
    return account, contact, made


def test_it_rebuilds_the_theme_and_loop_rollups_equal_to_raw(org_a, org_b):
    world(org_a)
    world(org_b)
    call_command("rebuild_insights", stdout=io.StringIO())
    with scope(organization=org_a.pk):
        assert ThemeDay.objects.filter(organization=org_a).exists()
        assert LoopFollowUp.objects.filter(organization=org_a).count() == 5
        themes = selectors.themes(org_a, filter_sets(org_a)[0])
    assert {row.theme: row.total for row in themes}["pricing"] == 2
    assert_rollups_equal_raw(org_a)
    assert_rollups_equal_raw(org_b)


def record(org, items, capture):
    with scope(organization=org.pk), capture(execute=True):
        return responses_record(organization=org, items=items, channel="api")


def test_it_keeps_the_theme_and_loop_rollups_equal_to_raw_through_changes(
    org_a, bob, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    account, contact, made = world(org_a)
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    assert_rollups_equal_raw(org_a)

    # New answers: analysed (themes) and, for detractors, followed up.
    record(
        org_a,
        [
            {"email": contact.email, "score": 2, "external_id": "n1", "comment": "So slow"},
            {"email": contact.email, "score": 9, "external_id": "n2", "comment": "Great price"},
        ],
        capture,
    )
    with scope(organization=org_a.pk):
        fresh = FollowUp.objects.get(response__external_id="n1")
        assert LoopFollowUp.objects.filter(followup_id=fresh.pk).exists()
        assert ThemeDay.objects.filter(day=TODAY, theme="performance").exists()
    assert_rollups_equal_raw(org_a)

    # A score edit that changes the category, and a comment edit that changes the themes.
    record(
        org_a,
        [
            {"email": contact.email, "score": 9, "external_id": "n1", "comment": "So slow"},
            {"email": contact.email, "score": 5, "external_id": "n2", "comment": "Bugs"},
        ],
        capture,
    )
    assert_rollups_equal_raw(org_a)

    # Re-analysis after the taxonomy grew.
    with scope(organization=org_a.pk), capture(execute=True):
        response_services.theme_add_keywords(
            organization=org_a, slug="praise", name="Praise", keywords=["awesome sauce", "bugs"]
        )
    assert_rollups_equal_raw(org_a)

    # The follow-up's life: first contact, status changes, closing, reopening.
    with scope(organization=org_a.pk):
        followup = FollowUp.objects.filter(status=Status.NEW).first()
    with scope(organization=org_a.pk), capture(execute=True):
        followup_services.followup_log(
            organization=org_a, followup=followup, actor=bob, kind="call", message="Called"
        )
    assert_rollups_equal_raw(org_a)
    with scope(organization=org_a.pk), capture(execute=True):
        followup_services.followup_change_status(
            organization=org_a, followup=followup, actor=bob, status=Status.IN_PROGRESS
        )
    assert_rollups_equal_raw(org_a)
    with scope(organization=org_a.pk), capture(execute=True):
        followup_services.followup_close(
            organization=org_a, followup=followup, actor=bob, outcome="resolved"
        )
    with scope(organization=org_a.pk):
        assert LoopFollowUp.objects.get(followup_id=followup.pk).outcome == "resolved"
    assert_rollups_equal_raw(org_a)
    with scope(organization=org_a.pk), capture(execute=True):
        followup_services.followup_change_status(
            organization=org_a, followup=followup, actor=bob, status=Status.WAITING
        )
    assert_rollups_equal_raw(org_a)

    # A deleted answer takes its follow-up and its themes along.
    with scope(organization=org_a.pk), capture(execute=True):
        Response.objects.filter(pk=made[0].pk).delete()
    with scope(organization=org_a.pk):
        assert not LoopFollowUp.objects.filter(response_id=made[0].pk).exists()
    assert_rollups_equal_raw(org_a)

    # Erasure: the person's comments and their themes go.
    with capture(execute=True), scope(organization=org_a.pk):
        account_services.contact_erase(organization=org_a, contact=contact, erased_by="test")
    with scope(organization=org_a.pk):
        assert not ThemeDay.objects.exists()
    assert_rollups_equal_raw(org_a)
    assert_incremental_equals_rebuild(org_a)


def test_it_sends_one_loop_event_per_transaction(org_a, bob, django_capture_on_commit_callbacks):
    from followups import events

    world(org_a)
    sent = []

    def listen(sender, organization_id, followup_ids, **kwargs):
        sent.append((organization_id, followup_ids))

    events.loop_changed.connect(listen, dispatch_uid="test.loop_changed")
    try:
        with scope(organization=org_a.pk):
            first, second = FollowUp.objects.filter(status=Status.NEW)[:1].get(), None
            second = FollowUp.objects.exclude(pk=first.pk).filter(status=Status.WAITING).get()
            with django_capture_on_commit_callbacks(execute=True):
                from django.db import transaction

                with transaction.atomic():
                    followup_services.followup_log(
                        organization=org_a, followup=first, actor=bob, kind="call", message="Hi"
                    )
                    followup_services.followup_close(
                        organization=org_a, followup=second, actor=bob, outcome="resolved"
                    )
                    # A note moves no loop figure.
                    followup_services.followup_log(
                        organization=org_a, followup=second, actor=bob, kind="note", message="x"
                    )
    finally:
        events.loop_changed.disconnect(dispatch_uid="test.loop_changed")
    assert sent == [(org_a.pk, sorted([first.pk, second.pk]))]


def test_it_reads_the_follow_ups_for_filters_the_loop_rollup_cannot_serve(org_a):
    world(org_a)
    segment = SegmentFactory(
        organization=org_a,
        rules={"match": "all", "conditions": [{"field": "arr", "op": "gte", "value": "0"}]},
    )
    year = filter_sets(org_a)[0]
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
        LoopFollowUp.objects.all().delete()
        LoopDay.objects.all().delete()
        ThemeDay.objects.all().delete()
        assert metrics.loop_health(org_a, year).detractors == 0
        assert metrics.themes(org_a, year) == []
        by_segment = year.replace(segment_id=segment.pk)
        assert metrics.loop_health(org_a, by_segment).detractors == 5
        assert metrics.themes(org_a, by_segment) != []

"""The daily rollup agrees with the raw responses, through recording, edits and deletes."""

import datetime
import io

from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from insights import metrics, selectors, services
from insights.metrics import Filters
from insights.models import DailyScore
from responses.models import Response
from responses.services import responses_record
from tests.accounts.factories import AccountFactory, ContactFactory
from tests.insights.factories import ResponseFactory, at

YEAR = Filters(
    since=timezone.localdate() - datetime.timedelta(days=400),
    until=timezone.localdate() + datetime.timedelta(days=1),
)


def figures(org, filters, *, raw):
    with scope(organization=org.pk):
        return (
            selectors.category_counts(org, filters, raw=raw),
            selectors.category_counts_by_period(org, filters, raw=raw),
            selectors.score_histogram(org, filters, raw=raw),
            selectors.comment_counts(org, filters, raw=raw),
        )


def assert_rollup_equals_raw(org):
    for filters in (YEAR, YEAR.replace(period="week"), YEAR.replace(channel="api")):
        assert figures(org, filters, raw=False) == figures(org, filters, raw=True)


def record(org, items, capture):
    """Records through the one service; the commit's callbacks run (event → rollup task)."""
    with scope(organization=org.pk), capture(execute=True):
        return responses_record(organization=org, items=items, channel="api")


def test_it_keeps_the_rollup_equal_to_raw_as_answers_arrive_and_change(
    org_a, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    contact = ContactFactory(account=AccountFactory(organization=org_a), organization=org_a)
    old = (timezone.now() - datetime.timedelta(days=40)).isoformat()
    record(
        org_a,
        [
            {"email": contact.email, "score": 3, "external_id": "a", "comment": "Slow"},
            {"email": contact.email, "score": 9, "external_id": "b"},
            {"email": contact.email, "score": 7, "external_id": "c", "submitted_at": old},
        ],
        capture,
    )
    assert figures(org_a, YEAR, raw=False)[0] == (1, 1, 1)
    assert_rollup_equals_raw(org_a)

    # Edit a score, and move an answer to another day: both days are recomputed.
    record(
        org_a,
        [
            {"email": contact.email, "score": 10, "external_id": "a"},
            {"email": contact.email, "score": 9, "external_id": "c"},
        ],
        capture,
    )
    record(
        org_a,
        [{"email": contact.email, "score": 0, "external_id": "b", "submitted_at": old}],
        capture,
    )
    assert figures(org_a, YEAR, raw=False)[0] == (2, 0, 1)
    assert_rollup_equals_raw(org_a)

    with scope(organization=org_a.pk), capture(execute=True):
        Response.objects.filter(external_id="a").delete()
    assert figures(org_a, YEAR, raw=False)[0] == (1, 0, 1)
    assert_rollup_equals_raw(org_a)


def test_it_rebuilds_the_rollup_exactly_by_command(org_a, org_b):
    for i in range(60):
        ResponseFactory(
            organization=org_a,
            score=i % 11,
            channel=["api", "email", "link"][i % 3],
            survey_id=[None, 5][i % 2],
            comment="x" if i % 4 == 0 else "",
            submitted_at=at(timezone.localdate() - datetime.timedelta(days=i * 5), hour=i % 24),
        )
    ResponseFactory(organization=org_b, score=1)
    with scopes_disabled():
        DailyScore.objects.all().delete()  # stale, as after an outage
    out = io.StringIO()
    call_command("rebuild_insights", stdout=out)
    assert "acme-a:" in out.getvalue()
    assert "borealis-b: 1 rollup rows" in out.getvalue()
    assert_rollup_equals_raw(org_a)
    assert figures(org_a, YEAR.replace(survey_id=5), raw=False) == figures(
        org_a, YEAR.replace(survey_id=5), raw=True
    )
    with scope(organization=org_a.pk):
        assert metrics.headline(org_a, YEAR).n == 60


def test_it_rebuilds_one_organization_by_slug(org_a, org_b):
    ResponseFactory(organization=org_b, score=1)
    out = io.StringIO()
    call_command("rebuild_insights", "borealis-b", stdout=out)
    assert out.getvalue().strip() == "borealis-b: 1 rollup rows"


def test_it_recomputes_only_touched_days(org_a):
    day = timezone.localdate() - datetime.timedelta(days=3)
    response = ResponseFactory(organization=org_a, score=4, submitted_at=at(day))
    with scope(organization=org_a.pk):
        services.rollup_responses(org_a.pk, [response.pk])
        services.rollup_responses(org_a.pk, [response.pk])  # idempotent
        rows = list(DailyScore.objects.values_list("day", "score", "responses"))
    assert rows == [(day, 4, 1)]


def test_it_recounts_runs_of_days_as_one_range_each_and_counts_their_edges(org_a):
    today = timezone.localdate()
    days = [today - datetime.timedelta(days=n) for n in (40, 12, 11, 10, 9)]
    edges = []
    for day in days:
        start = at(day, 0)
        edges += [start, start + datetime.timedelta(days=1) - datetime.timedelta(microseconds=1)]
    responses = [
        ResponseFactory(organization=org_a, score=n % 11, submitted_at=moment)
        for n, moment in enumerate(edges)
    ]

    window = services._days_window(days)

    assert len(window.children) == 2  # days 40 and 12…9: two runs, two ranges
    with scope(organization=org_a.pk):
        services.rollup_responses(org_a.pk, [r.pk for r in responses])
        counted = dict(
            DailyScore.objects.values_list("day").annotate(n=Sum("responses")).order_by()
        )
    assert counted == dict.fromkeys(days, 2)
    assert_rollup_equals_raw(org_a)


def test_it_rebuilds_every_organization_nightly(org_a, org_b):
    from insights import tasks

    ResponseFactory(organization=org_a, score=9)
    ResponseFactory(organization=org_b, score=2)
    tasks.rebuild_all.delay()
    with scopes_disabled():
        rows = sorted(DailyScore.objects.values_list("organization__slug", "score", "responses"))
    assert rows == [("acme-a", 9, 1), ("borealis-b", 2, 1)]


def test_it_recounts_deleted_answers_in_one_task_per_transaction(
    org_a, django_capture_on_commit_callbacks
):
    from unittest import mock

    from insights import tasks

    day = timezone.localdate() - datetime.timedelta(days=2)
    for score in (1, 2, 9):
        ResponseFactory(organization=org_a, score=score, submitted_at=at(day))
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
        with (
            mock.patch.object(
                tasks.rollup_responses, "delay", wraps=tasks.rollup_responses.delay
            ) as delay,
            django_capture_on_commit_callbacks(execute=True) as callbacks,
        ):
            Response.objects.filter(score__lt=5).delete()
        rows = list(DailyScore.objects.values_list("score", "responses"))
    assert len(callbacks) == 1
    assert delay.call_count == 1
    assert rows == [(9, 1)]

"""The per-account rollups (RolledResponse's links and AccountMonth) give exactly the raw
per-account figures, after a rebuild and through recording, edits, deletes and erasure."""

import datetime
import io
import math

from django.core.management import call_command
from django.utils import timezone
from django_scopes import scope

from accounts.models import Account, Contact
from insights import metrics, selectors, services
from insights.metrics import Filters
from insights.models import AccountMonth, AccountSpan, RolledResponse
from responses.models import Response
from responses.services import responses_record
from tests.accounts.factories import AccountFactory, ContactFactory, SegmentFactory
from tests.insights.factories import ResponseFactory, at

TODAY = timezone.localdate()


def ranges():
    """Whole months, edges on both sides, a range ending before the latest answers, one
    inside a single month, and the default last twelve months."""
    month = TODAY.replace(day=1)
    return [
        Filters(since=TODAY - datetime.timedelta(days=400), until=TODAY),
        Filters(
            since=TODAY - datetime.timedelta(days=170), until=TODAY - datetime.timedelta(days=9)
        ),
        Filters(
            since=TODAY - datetime.timedelta(days=95), until=TODAY - datetime.timedelta(days=40)
        ),
        Filters(since=month, until=TODAY),
        Filters(since=TODAY - datetime.timedelta(days=3), until=TODAY - datetime.timedelta(days=1)),
        Filters(since=metrics._default_range(TODAY)[0], until=TODAY),
        # Ten years: the longest blocks of months.
        Filters(since=TODAY - datetime.timedelta(days=3650), until=TODAY),
    ]


def rows(frame):
    """The frame as comparable tuples, by account (NaN scores as None)."""
    out = []
    for record in frame.sort_values("account_id").itertuples(index=False):
        values = tuple(None if isinstance(v, float) and math.isnan(v) else v for v in record)
        out.append(values)
    return out


def assert_rollup_equals_raw(org):
    with scope(organization=org.pk):
        for filters in ranges():
            rolled = selectors.account_scores(org, filters)
            raw = selectors.account_scores(org, filters, raw=True)
            assert rows(rolled) == rows(raw), filters
            counts = selectors._account_counts(org, filters)
            raw_counts = selectors._account_counts(org, filters, raw=True)
            assert counts.sort_index().to_dict() == raw_counts.sort_index().to_dict(), filters
            detractors = selectors.responses_in(org, filters).filter(selectors.DETRACTOR_Q)
            assert selectors._saves_of(rolled) == selectors._saves(detractors), filters


def world(org):
    """Respondents across accounts and months: a contact who moved account, answers with
    no contact or no account, two answers at the same moment, answers at month ends."""
    first, second, third = (
        AccountFactory(
            organization=org,
            arr=1000 * i,
            renewal_date=TODAY + datetime.timedelta(days=200 * i),
            last_score=3 * i,
            last_score_at=at(TODAY - datetime.timedelta(days=i)),
        )
        for i in (1, 2, 3)
    )
    ann = ContactFactory(organization=org, account=first)
    ben = ContactFactory(organization=org, account=second)
    cat = ContactFactory(organization=org, account=third)

    def day(days_ago):
        return TODAY - datetime.timedelta(days=days_ago)

    for days, score, contact, account in [
        (300, 2, ann, first),
        (200, 9, ann, first),
        (120, 7, ann, second),  # ann moved to the second account
        (50, 3, ann, second),
        (160, 10, ben, second),
        (2, 1, ben, second),
        (31, 8, cat, third),
        (31, 4, cat, third),  # same moment as the answer above
        (62, 6, None, third),
        (5, 10, None, third),
        (15, 0, cat, None),  # no account: not in the account figures
    ]:
        ResponseFactory(
            organization=org,
            contact=contact,
            account=account,
            score=score,
            submitted_at=at(day(days), hour=23 if days % 2 else 0),
        )
    return first, second, third, ann, ben, cat


def record(org, items, capture):
    with scope(organization=org.pk), capture(execute=True):
        return responses_record(organization=org, items=items, channel="api")


def test_it_rebuilds_the_account_rollups_equal_to_raw(org_a, org_b):
    world(org_a)
    world(org_b)
    call_command("rebuild_insights", stdout=io.StringIO())
    with scope(organization=org_a.pk):
        assert AccountMonth.objects.filter(organization=org_a).exists()
        latest = RolledResponse.objects.filter(
            organization=org_a, account_id__isnull=False, next_at__isnull=True
        ).count()
    assert latest == 5  # ann, ben, cat (once: the later id of a tie) and two without contact
    assert_rollup_equals_raw(org_a)
    assert_rollup_equals_raw(org_b)


def test_it_keeps_the_account_rollups_equal_to_raw_through_changes(
    org_a, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    first, second, third, ann, ben, cat = world(org_a)
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    assert_rollup_equals_raw(org_a)

    # A new latest answer for ann, on the first account again, and a new respondent.
    newcomer = ContactFactory(organization=org_a, account=third)
    record(
        org_a,
        [
            {"contact_id": ann.pk, "score": 10, "external_id": "n1"},
            {"contact_id": newcomer.pk, "score": 5, "external_id": "n2"},
        ],
        capture,
    )
    assert_rollup_equals_raw(org_a)

    # Edit a score, and move the latest answer back in time (the earlier one is latest again).
    old = (timezone.now() - datetime.timedelta(days=250)).isoformat()
    record(org_a, [{"contact_id": ann.pk, "score": 1, "external_id": "n1"}], capture)
    assert_rollup_equals_raw(org_a)
    record(
        org_a,
        [{"contact_id": ann.pk, "score": 1, "external_id": "n1", "submitted_at": old}],
        capture,
    )
    assert_rollup_equals_raw(org_a)

    # Give an answer to another respondent (and so another account).
    record(org_a, [{"contact_id": ben.pk, "score": 5, "external_id": "n2"}], capture)
    assert_rollup_equals_raw(org_a)

    # Delete a respondent's latest answer: the one before becomes the latest.
    with scope(organization=org_a.pk), capture(execute=True):
        Response.objects.filter(contact=ben, score=1).delete()
    assert_rollup_equals_raw(org_a)

    # Erase a contact: the answers stay, each its own respondent. (The commit's callbacks
    # run once the scope is left, as after a request.)
    with capture(execute=True), scope(organization=org_a.pk):
        Contact.objects.filter(pk=cat.pk).delete()
    assert_rollup_equals_raw(org_a)

    # Delete an account: its answers leave the account figures.
    with scope(organization=org_a.pk), capture(execute=True):
        Account.objects.filter(pk=first.pk).delete()
    assert_rollup_equals_raw(org_a)

    # And the incremental state is the state a rebuild gives.
    with scope(organization=org_a.pk):
        kept = sorted(AccountMonth.objects.values_list(
            "account_id", "month", "promoters", "passives", "detractors", "last_at",
            "latest_score_sum", "latest_respondents",
        ))  # fmt: skip
        links = sorted(RolledResponse.objects.values_list("response_id", "account_id", "next_at"))
        blocks = sorted(AccountSpan.objects.values_list(
            "account_id", "month", "months", "promoters", "passives", "detractors", "last_at",
            "first_detractor_at", "lowest_score", "latest_score_sum", "latest_respondents",
        ))  # fmt: skip
        services.rollup_rebuild(org_a.pk)
        assert blocks == sorted(AccountSpan.objects.values_list(
            "account_id", "month", "months", "promoters", "passives", "detractors", "last_at",
            "first_detractor_at", "lowest_score", "latest_score_sum", "latest_respondents",
        ))  # fmt: skip
        assert kept == sorted(AccountMonth.objects.values_list(
            "account_id", "month", "promoters", "passives", "detractors", "last_at",
            "latest_score_sum", "latest_respondents",
        ))  # fmt: skip
        assert links == sorted(
            RolledResponse.objects.values_list("response_id", "account_id", "next_at")
        )


def test_it_reads_the_answers_for_filters_the_account_rollups_cannot_serve(org_a):
    world(org_a)
    segment = SegmentFactory(
        organization=org_a,
        rules={"match": "all", "conditions": [{"field": "arr", "op": "gte", "value": "2000"}]},
    )
    year = Filters(since=TODAY - datetime.timedelta(days=400), until=TODAY)
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
        # What reads the rollup now misses accounts.
        AccountMonth.objects.all().delete()
        AccountSpan.objects.all().delete()
        assert metrics.account_level(org_a, year).accounts < 3
        assert metrics.account_level(org_a, year.replace(channel="api")).accounts == 3
        assert metrics.account_level(org_a, year.replace(segment_id=segment.pk)).accounts == 2
        assert metrics.account_level(org_a, year.replace(survey_id=7)).accounts == 0


def test_it_covers_a_range_of_whole_months_with_few_aligned_blocks():
    from insights.models import SPAN_MONTHS, month_index, month_of_index, spans

    assert spans(datetime.date(2025, 12, 1), datetime.date(2026, 11, 1)) == [
        (datetime.date(2025, 12, 1), 1),
        (datetime.date(2026, 1, 1), 8),
        (datetime.date(2026, 9, 1), 2),
    ]
    for first in range(
        month_index(datetime.date(2019, 1, 1)), month_index(datetime.date(2021, 1, 1))
    ):
        for length in range(1, 130):
            blocks = spans(month_of_index(first), month_of_index(first + length))
            index = first
            for start, months in blocks:
                # Contiguous, aligned on their own length, and of the lengths stored.
                assert (month_index(start), month_index(start) % months) == (index, 0)
                assert months == 1 or months in SPAN_MONTHS
                index += months
            assert index == first + length
            assert len(blocks) <= 2 * (len(SPAN_MONTHS) + 1)

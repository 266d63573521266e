"""Every figure of the metrics service against small hand-computed fixtures."""

import datetime
import math
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.models import Account
from insights import metrics, services
from insights.metrics import Filters, Nps
from responses.models import ResponseTheme
from tests.accounts.factories import (
    AccountFactory,
    ContactFactory,
    SegmentFactory,
    SupportTicketFactory,
)
from tests.insights.factories import FollowUpFactory, ResponseFactory, at
from tests.surveys.factories import InvitationFactory, ProgrammeFactory

TODAY = datetime.date(2026, 6, 15)
MAY = Filters(since=datetime.date(2026, 5, 1), until=datetime.date(2026, 5, 31))
DAY = datetime.date(2026, 5, 10)


def answers(org, scores, *, day=DAY, **extra):
    return [
        ResponseFactory(organization=org, score=s, submitted_at=at(day), **extra) for s in scores
    ]


def compute(org, figure, filters=MAY):
    with scope(organization=org.pk):
        services.rollup_rebuild(org.pk)
        return getattr(metrics, figure)(org, filters)


# --- The formula and its interval -------------------------------------------------------------


def test_it_computes_nps_in_one_formula():
    assert metrics.nps_score(5, 3, 2) == pytest.approx(30.0)
    assert metrics.nps_score(0, 0, 0) is None
    assert metrics.nps_score(0, 0, 4) == -100.0


def brute_force_interval(p, pa, d, z=1.959963984540054):
    """An independent derivation: NPS is the mean of X ∈ {+1, 0, −1}; with ¾ promoter, ¾
    detractor and 1½ passive added, the variance of X is E[X²] − E[X]², over n + 3. The
    pseudo-observations are those of Rocks' own R package `NPS` (nps_test with
    test = "adjusted.wald", pseudo_observations = c(0.75, 1.5, 0.75))."""
    values = [(1, p + 0.75), (0, pa + 1.5), (-1, d + 0.75)]
    n = sum(w for _, w in values)
    mean = sum(x * w for x, w in values) / n
    var = sum(w * (x - mean) ** 2 for x, w in values) / n
    half = z * math.sqrt(var / n)
    return 100 * (mean - half), 100 * (mean + half)


@pytest.mark.parametrize("counts", [(50, 30, 20), (1, 0, 0), (0, 0, 7), (120, 45, 300), (3, 9, 2)])
def test_it_matches_an_independent_computation_of_the_adjusted_wald_interval(counts):
    low, high = metrics.nps_interval(*counts)
    expected_low, expected_high = brute_force_interval(*counts)
    assert low == pytest.approx(max(-100, expected_low), abs=1e-6)
    assert high == pytest.approx(min(100, expected_high), abs=1e-6)


def test_it_matches_a_hand_worked_adjusted_wald_interval():
    # 50 promoters, 30 passives, 20 detractors: n' = 103, p' = 50.75/103 = 0.492718,
    # d' = 20.75/103 = 0.201456, NPS' = 0.291262, var = p' + d' − NPS'² = 0.609340,
    # se = √(0.609340/103) = 0.076915, ±1.96·se = 0.150751 → 14.05 … 44.20.
    low, high = metrics.nps_interval(50, 30, 20)
    assert low == pytest.approx(14.05, abs=0.01)
    assert high == pytest.approx(44.20, abs=0.01)
    assert metrics._z(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_it_marks_small_samples_insufficient():
    small = Nps.of(20, 5, 4)
    assert small.n == 29
    assert not small.sufficient
    assert small.nps is not None
    assert Nps.of(20, 6, 4).sufficient
    empty = Nps.empty()
    assert empty.nps is None
    assert empty.low is None
    assert empty.promoter_pct is None


def test_it_flags_a_significant_change_and_not_a_noisy_one():
    big = metrics.change(Nps.of(70, 20, 10), Nps.of(30, 20, 50))
    assert big.delta == pytest.approx(80.0)
    assert big.significant
    noise = metrics.change(Nps.of(52, 20, 28), Nps.of(50, 20, 30))
    assert noise.delta == pytest.approx(4.0)
    assert not noise.significant
    small = metrics.change(Nps.of(10, 0, 0), Nps.of(0, 0, 10))
    assert not small.significant  # below the minimum sample, never significant
    assert metrics.change(Nps.of(1, 0, 0), Nps.empty()) == metrics.Change(None, False)


# --- Filters -----------------------------------------------------------------------------------


def test_it_defaults_to_the_last_twelve_months(org_a):
    with scope(organization=org_a.pk):
        filters = metrics.filters_from_params(org_a, {}, today=TODAY)
    assert (filters.since, filters.until, filters.period) == (
        datetime.date(2025, 7, 1),
        TODAY,
        "month",
    )
    assert filters.previous().until == datetime.date(2025, 6, 30)
    assert filters.previous().days == filters.days


def test_it_names_the_field_of_a_bad_parameter(org_a, org_b):
    other = SegmentFactory(organization=org_b)
    with scope(organization=org_a.pk), pytest.raises(ValidationError) as raised:
        metrics.filters_from_params(
            org_a,
            {"since": "2026-13-01", "period": "day", "segment": str(other.pk), "channel": "x"},
        )
    assert set(raised.value.message_dict) == {"since", "period", "segment", "channel"}
    with scope(organization=org_a.pk), pytest.raises(ValidationError) as raised:
        metrics.filters_from_params(org_a, {"since": "2026-05-02", "until": "2026-05-01"})
    assert "since" in raised.value.message_dict


def test_it_round_trips_filters_through_params(org_a):
    segment = SegmentFactory(organization=org_a)
    filters = MAY.replace(segment_id=segment.pk, channel="email", period="week")
    with scope(organization=org_a.pk):
        assert metrics.filters_from_params(org_a, filters.as_params()) == filters


# --- Response figures --------------------------------------------------------------------------


def test_it_computes_the_headline_mix_and_histogram(org_a, org_b):
    answers(org_a, [10, 10, 9, 8, 7, 6, 3, 0, 10, 9])  # 5 promoters, 2 passives, 3 detractors
    answers(org_a, [0, 0], day=datetime.date(2026, 6, 1))  # outside May
    answers(org_b, [0] * 40)  # another tenant
    nps = compute(org_a, "headline")
    assert (nps.n, nps.promoters, nps.passives, nps.detractors) == (10, 5, 2, 3)
    assert nps.nps == pytest.approx(20.0)
    assert (nps.low, nps.high) == pytest.approx(metrics.nps_interval(5, 2, 3))
    assert nps.promoter_pct == 50.0
    assert nps.passive_pct == 20.0
    assert nps.detractor_pct == 30.0
    assert not nps.sufficient
    assert compute(org_a, "histogram") == [1, 0, 0, 1, 0, 0, 1, 1, 1, 2, 3]


def test_it_computes_the_trend_per_period_with_empty_periods(org_a):
    answers(org_a, [10, 0], day=datetime.date(2026, 4, 30))
    answers(org_a, [10, 10, 7], day=datetime.date(2026, 5, 4))
    answers(org_a, [0], day=datetime.date(2026, 5, 20))
    filters = Filters(since=datetime.date(2026, 4, 1), until=datetime.date(2026, 6, 10))
    points = compute(org_a, "trend", filters)
    assert [p.label for p in points] == ["2026-04", "2026-05", "2026-06"]
    assert [p.nps.n for p in points] == [2, 4, 0]
    assert points[1].nps.nps == pytest.approx(25.0)
    assert points[2].end == datetime.date(2026, 6, 10)
    assert points[2].nps.nps is None
    weekly = compute(org_a, "trend", MAY.replace(period="week"))
    assert weekly[0].start == datetime.date(2026, 4, 27)  # the Monday of May 1st's week
    assert sum(p.nps.n for p in weekly) == 4
    quarters = compute(org_a, "trend", filters.replace(period="quarter"))
    assert [(p.label, p.nps.n) for p in quarters] == [("2026-Q2", 6)]


def test_it_filters_by_survey_channel_segment_and_owner(org_a, bob):
    enterprise = AccountFactory(organization=org_a, plan="enterprise", owner=bob)
    growth = AccountFactory(organization=org_a, plan="growth")
    segment = SegmentFactory(
        organization=org_a,
        rules={
            "match": "all",
            "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
        },
    )
    answers(org_a, [10, 10], account=enterprise, channel="email", survey_id=7)
    answers(org_a, [0, 0, 0], account=growth, channel="api")
    assert compute(org_a, "headline", MAY.replace(channel="email")).n == 2
    assert compute(org_a, "headline", MAY.replace(survey_id=7)).nps == 100.0
    assert compute(org_a, "headline", MAY.replace(segment_id=segment.pk)).n == 2
    assert compute(org_a, "headline", MAY.replace(owner_id=bob.pk)).promoters == 2
    assert compute(org_a, "histogram", MAY.replace(segment_id=segment.pk))[10] == 2
    by_week = compute(org_a, "trend", MAY.replace(segment_id=segment.pk, period="week"))
    assert [p.nps.n for p in by_week if p.nps.n] == [2]
    assert compute(org_a, "rates", MAY.replace(owner_id=bob.pk)).responses == 2


def test_it_computes_the_change_against_the_previous_period(org_a):
    answers(org_a, [10] * 30, day=DAY)
    answers(org_a, [0] * 30, day=datetime.date(2026, 4, 10))
    board = compute(org_a, "dashboard")
    assert board.previous.n == 30
    assert board.previous.nps == -100.0
    assert board.change.delta == 200.0
    assert board.change.significant


def test_it_computes_segment_rows_with_their_change(org_a):
    enterprise = AccountFactory(organization=org_a, plan="enterprise")
    growth = AccountFactory(organization=org_a, plan="growth")
    seg = SegmentFactory(
        organization=org_a,
        name="Enterprise",
        rules={
            "match": "all",
            "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
        },
    )
    answers(org_a, [10, 10, 7, 0], account=enterprise)
    answers(org_a, [0, 0], account=enterprise, day=datetime.date(2026, 4, 2))
    answers(org_a, [0, 0, 0], account=growth)
    rows = compute(org_a, "segments")
    assert [r.name for r in rows] == ["Enterprise"]
    assert rows[0].segment_id == seg.pk
    assert (rows[0].nps.n, rows[0].nps.nps) == (4, 25.0)
    assert rows[0].change.delta == pytest.approx(125.0)
    assert not rows[0].change.significant


def test_it_computes_response_and_verbatim_rates(org_a):
    programme = ProgrammeFactory(organization=org_a)
    sent = at(DAY)
    for state, answered in [("answered", True), ("delivered", False), ("opened", False)]:
        InvitationFactory(
            programme=programme,
            state=state,
            sent_at=sent,
            answered_at=sent if answered else None,
        )
    InvitationFactory(programme=programme, state="bounced", sent_at=sent)
    answers(org_a, [9], comment="Great support")
    answers(org_a, [3, 8, 10])
    rates = compute(org_a, "rates")
    assert (rates.delivered, rates.answered) == (3, 1)
    assert rates.response_rate == pytest.approx(1 / 3)
    assert (rates.with_comment, rates.responses, rates.verbatim_rate) == (1, 4, 0.25)


# --- Account figures ---------------------------------------------------------------------------


def accounts_world(org):
    """Three accounts: Big (ARR 900k, three people: latest 0, 2 and 4 → mean 2, a danger-zone
    detractor renewing in 30 days), Mid (ARR 90k, one 10 → promoter), Small (ARR 10k, one
    person answering 10 then 5 → latest 5, detractor)."""
    today = timezone.localdate()
    big = AccountFactory(
        organization=org,
        name="Big",
        arr=Decimal("900000"),
        renewal_date=today + datetime.timedelta(days=30),
    )
    mid = AccountFactory(organization=org, name="Mid", arr=Decimal("90000"))
    small = AccountFactory(organization=org, name="Small", arr=Decimal("10000"))
    people = [ContactFactory(account=big, organization=org) for _ in range(3)]
    ResponseFactory(account=big, contact=people[0], score=10, submitted_at=at(DAY, 8))
    for person, score in zip(people, [0, 2, 4], strict=True):
        ResponseFactory(account=big, contact=person, score=score, submitted_at=at(DAY, 10))
    ResponseFactory(
        account=mid, contact=ContactFactory(account=mid), score=10, submitted_at=at(DAY)
    )
    one = ContactFactory(account=small)
    ResponseFactory(account=small, contact=one, score=10, submitted_at=at(DAY, 9))
    ResponseFactory(account=small, contact=one, score=5, submitted_at=at(DAY, 11))
    return big, mid, small


def test_it_computes_account_level_and_revenue_weighted_nps(org_a):
    accounts_world(org_a)
    level = compute(org_a, "account_level")
    assert level.accounts == 3
    assert (level.nps.promoters, level.nps.passives, level.nps.detractors) == (1, 0, 2)
    assert level.nps.nps == pytest.approx(100 * (1 - 2) / 3)
    # ARR-weighted: (90k − 900k − 10k) / 1,000k = −82%.
    assert level.revenue_weighted_nps == pytest.approx(-82.0)
    # The response-level NPS counts Big's people and Small's repeat answers.
    assert compute(org_a, "headline").n == 7


def test_it_computes_revenue_at_risk_with_its_subsets(org_a):
    big, _, small = accounts_world(org_a)
    risk = compute(org_a, "revenue_at_risk")
    assert risk.currency == org_a.currency
    assert (risk.total, risk.accounts) == (Decimal("910000"), 2)
    assert (risk.danger_zone, risk.danger_zone_accounts) == (Decimal("900000"), 1)
    assert (risk.renewal_90d, risk.renewal_90d_accounts) == (Decimal("900000"), 1)
    assert [a.id for a in risk.top] == [big.pk, small.pk]
    assert risk.top[0].score == 2.0
    assert risk.top[0].danger_zone


def test_it_adds_revenue_at_risk_to_the_cent_and_shows_each_account_as_stored(org_a):
    renewal = timezone.localdate() + datetime.timedelta(days=10)
    cents = AccountFactory(organization=org_a, arr=Decimal("0.10"), renewal_date=renewal)
    more = AccountFactory(organization=org_a, arr=Decimal("0.20"))
    unknown = AccountFactory(organization=org_a, arr=None)
    for account, score in ((cents, 2), (more, 5), (unknown, 1)):
        answers(org_a, [score], account=account)
    risk = compute(org_a, "revenue_at_risk")
    # 0.1 + 0.2 in doubles is 0.30000000000000004; the sum stays exact.
    assert (risk.total, risk.accounts) == (Decimal("0.30"), 3)
    assert (risk.danger_zone, risk.danger_zone_accounts) == (Decimal("0.10"), 2)
    assert (risk.renewal_90d, risk.renewal_90d_accounts) == (Decimal("0.10"), 1)
    assert [(a.id, a.arr, a.renewal_date) for a in risk.top] == [
        (more.pk, Decimal("0.20"), None),
        (cents.pk, Decimal("0.10"), renewal),
        (unknown.pk, Decimal("0"), None),
    ]


def test_it_reads_query_columns_as_the_rows_give_them(db):
    from django.db import connection

    from insights import selectors

    query = (
        "SELECT * FROM (SELECT 1 AS n, 'a, \"b\"' AS label, TRUE AS flag "
        "UNION ALL SELECT 2, NULL, FALSE UNION ALL SELECT 3, '{c}', NULL) v WHERE v.n > %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [0])
        rows = cursor.fetchall()
    assert len(rows) == 3
    columns = selectors._fetch_columns(query, [0], ["n", "label", "flag"])
    assert [list(column) for column in columns] == [list(c) for c in zip(*rows, strict=True)]
    empty = selectors._fetch_columns(query, [9], ["n", "label", "flag"])
    assert [len(column) for column in empty] == [0, 0, 0]


def test_it_warns_of_sampling_bias_only_when_risky_accounts_are_under_covered(org_a):
    healthy = [AccountFactory(organization=org_a, health_score=90) for _ in range(10)]
    sick = [AccountFactory(organization=org_a, health_score=20) for _ in range(10)]
    for account in healthy:
        answers(org_a, [9], account=account)
    answers(org_a, [3], account=sick[0])
    cover = compute(org_a, "coverage")
    assert (cover.accounts_total, cover.accounts_surveyed) == (20, 11)
    assert cover.account_share == pytest.approx(0.55)
    assert cover.low_health_share == pytest.approx(0.1)
    assert cover.bias_warning
    assert "low-health" in cover.message

    for account in sick[1:6]:
        answers(org_a, [3], account=account)
    SupportTicketFactory(account=sick[0], organization=org_a)
    cover = compute(org_a, "coverage")
    assert cover.low_health_share == pytest.approx(0.6)
    assert cover.open_ticket_share == 1.0
    assert not cover.bias_warning


def test_it_computes_coverage_of_arr(org_a):
    a = AccountFactory(organization=org_a, arr=Decimal("300"))
    AccountFactory(organization=org_a, arr=Decimal("700"))
    answers(org_a, [9], account=a)
    assert compute(org_a, "coverage").arr_share == pytest.approx(0.3)


def test_it_counts_an_invited_account_as_surveyed_without_an_answer(org_a):
    programme = ProgrammeFactory(organization=org_a)
    answered, invited, bounced, earlier, untouched = (
        AccountFactory(organization=org_a, arr=Decimal(arr)) for arr in (100, 200, 300, 400, 0)
    )
    answers(org_a, [9], account=answered)
    for account, state, day in [
        (answered, "delivered", DAY),
        (invited, "opened", DAY),
        (bounced, "bounced", DAY),
        (earlier, "delivered", datetime.date(2026, 4, 30)),
    ]:
        InvitationFactory(
            programme=programme,
            contact=ContactFactory(organization=org_a, account=account),
            state=state,
            sent_at=at(day),
        )
    cover = compute(org_a, "coverage")
    # The answered account and the delivered (not bounced) invitation in May; the April
    # invitation is outside the range. Each of the five accounts also has a contact.
    assert (cover.accounts_total, cover.accounts_surveyed) == (5, 2)
    assert cover.arr_share == pytest.approx(300 / 1000)


def test_it_computes_segments_with_empty_and_impossible_rules_in_one_query(
    org_a, django_assert_num_queries
):
    big, mid, small = accounts_world(org_a)
    everyone = SegmentFactory(organization=org_a, name="A everyone", rules={})
    nobody = SegmentFactory(
        organization=org_a,
        name="B nobody",
        rules={
            "match": "all",
            "conditions": [{"field": "last_score", "op": "eq", "value": "6.5"}],
        },
    )
    not_nobody = SegmentFactory(
        organization=org_a,
        name="C not nobody",
        rules={
            "match": "all",
            "conditions": [{"field": "last_score", "op": "neq", "value": "6.5"}],
        },
    )
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
        # The segments, their members (all at once) and the previous period's counts; the
        # current period's counts are the shared per-account read.
        with django_assert_num_queries(4):
            rows = metrics.segments(org_a, MAY)
        headline = metrics.headline(org_a, MAY)
    by_name = {row.name: row for row in rows}
    assert list(by_name) == ["A everyone", "B nobody", "C not nobody"]
    assert by_name["A everyone"].nps == headline
    assert by_name["B nobody"].nps.n == 0
    assert by_name["C not nobody"].nps == headline
    assert (everyone.pk, nobody.pk, not_nobody.pk) == tuple(r.segment_id for r in rows)


def test_it_computes_loop_health(org_a):
    moment = at(DAY)
    hours = datetime.timedelta(hours=1)
    account = AccountFactory(organization=org_a, arr=Decimal("1000"))
    first, second, third = answers(org_a, [2, 5, 6], account=account)
    FollowUpFactory(
        response=first,
        first_contact_at=moment + 2 * hours,
        closed_at=moment + 10 * hours,
        status="closed",
        outcome="resolved",
    )
    FollowUpFactory(response=second, first_contact_at=moment + 30 * hours, status="in_progress")
    FollowUpFactory(response=third, due_at=moment + hours)  # open and overdue
    FollowUpFactory(response=answers(org_a, [10])[0])  # a promoter: not loop health
    later = at(DAY + datetime.timedelta(days=3))
    ResponseFactory(account=account, score=8, submitted_at=later)
    with scopes_disabled():
        Account.objects.filter(pk=account.pk).update(last_score=8, last_score_at=later)
    loop = compute(org_a, "loop_health")
    assert loop.detractors == 3
    assert loop.contacted_within_sla_share == pytest.approx(1 / 3)
    assert loop.median_hours_to_first_contact == pytest.approx(16.0)
    assert loop.median_hours_to_close == pytest.approx(10.0)
    assert (loop.open, loop.overdue) == (2, 2)
    assert loop.outcomes == {"resolved": 1}
    # The account's lowest detractor score was 2; its latest answer, later, scored 8.
    assert (loop.saved, loop.detractor_accounts, loop.save_rate) == (1, 1, 1.0)


def test_it_counts_themes_for_detractors_and_promoters(org_a):
    rows = answers(org_a, [0, 2, 10, 9, 7])
    for response, theme in zip(
        rows, ["pricing", "pricing", "support", "pricing", "support"], strict=True
    ):
        with scope(organization=org_a.pk):
            ResponseTheme.objects.create(organization=org_a, response=response, theme=theme)
    result = compute(org_a, "themes")
    assert [(t.theme, t.detractors, t.promoters, t.total) for t in result] == [
        ("pricing", 2, 1, 3),
        ("support", 0, 1, 2),
    ]
    assert result[0].label == "Pricing"
    assert result[0].trend == [3]


def test_it_states_when_the_score_does_not_predict_churn(org_a):
    churned = at(DAY + datetime.timedelta(days=40))
    for i in range(12):
        d = AccountFactory(organization=org_a, churned_at=churned if i < 1 else None)
        p = AccountFactory(organization=org_a, churned_at=churned if i < 1 else None)
        answers(org_a, [2], account=d)
        answers(org_a, [10], account=p)
    result = compute(org_a, "churn")
    by = {r.category: r for r in result.rows}
    assert (by["detractor"].accounts, by["detractor"].churned) == (12, 1)
    assert by["promoter"].rate == pytest.approx(1 / 12)
    assert result.predictive is False
    assert "does not predict" in result.message


def test_it_says_when_the_score_predicts_churn_or_there_are_too_few(org_a):
    churned = at(DAY + datetime.timedelta(days=40))
    late = at(DAY + datetime.timedelta(days=400))  # beyond six months: not counted
    for i in range(12):
        d = AccountFactory(organization=org_a, churned_at=churned if i < 8 else late)
        answers(org_a, [2], account=d)
    few = compute(org_a, "churn")
    assert few.predictive is None
    assert "Too few" in few.message
    for _ in range(12):
        answers(org_a, [10], account=AccountFactory(organization=org_a))
    result = compute(org_a, "churn")
    assert result.predictive is True
    assert "predicts churn" in result.message
    assert {r.category: r.churned for r in result.rows}["detractor"] == 8


# --- The whole dashboard -----------------------------------------------------------------------


def test_it_explains_an_empty_organization(org_a):
    board = compute(org_a, "dashboard")
    assert board.headline == Nps.empty()
    assert not board.change.significant
    assert board.histogram == [0] * 11
    assert board.themes == []
    assert board.segments == []
    assert board.revenue_at_risk.total == 0
    assert board.churn.predictive is None


def test_it_keeps_other_tenants_out_of_every_figure(org_a, org_b):
    accounts_world(org_b)
    answers(org_b, [0] * 40)
    board = compute(org_a, "dashboard")
    assert board.headline.n == 0
    assert board.account_level.accounts == 0
    assert board.revenue_at_risk.accounts == 0
    assert board.coverage.accounts_total == 0
    assert board.loop.detractors == 0
    assert sum(p.nps.n for p in board.trend) == 0


def test_it_computes_the_dashboard_in_a_bounded_number_of_queries(
    org_a, django_assert_max_num_queries
):
    accounts_world(org_a)
    for i in range(5):
        SegmentFactory(organization=org_a, name=f"S{i}")
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    with scope(organization=org_a.pk), django_assert_max_num_queries(30):
        metrics.dashboard(org_a, MAY)


def test_it_computes_the_dashboard_in_as_many_queries_for_one_segment_as_for_five(org_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    accounts_world(org_a)
    counts = []
    for added in (1, 4):
        for _ in range(added):
            SegmentFactory(organization=org_a)
        with scope(organization=org_a.pk):
            services.rollup_rebuild(org_a.pk)
            with CaptureQueriesContext(connection) as queries:
                metrics.dashboard(org_a, MAY)
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 13, counts


def test_it_serves_a_cached_dashboard_for_at_most_a_minute(org_a, django_assert_num_queries):
    from django.core.cache import cache

    cache.clear()
    answers(org_a, [10] * 3)
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
        first = metrics.dashboard_cached(org_a, MAY)
        with django_assert_num_queries(0):
            again = metrics.dashboard_cached(org_a, MAY)
        other = metrics.dashboard_cached(org_a, MAY.replace(channel="email"))
    assert again == first
    assert first.headline.n == 3
    assert other.headline.n == 0
    assert metrics.CACHE_SECONDS == 60


def test_it_puts_no_revenue_at_risk_without_detractor_accounts(org_a):
    fan = AccountFactory(organization=org_a, arr=None)
    answers(org_a, [10, 9], account=fan)
    risk = compute(org_a, "revenue_at_risk")
    assert (risk.total, risk.accounts, risk.renewal_90d_accounts, risk.top) == (0, 0, 0, [])
    level = compute(org_a, "account_level")
    assert level.nps.nps == 100.0
    assert level.revenue_weighted_nps is None  # no ARR to weigh


def test_it_counts_a_detractor_account_that_renewed_a_year_on_as_saved(org_a):
    def detractor_account(renewal_days, churned=False):
        account = AccountFactory(
            organization=org_a,
            renewal_date=DAY + datetime.timedelta(days=renewal_days),
            churned_at=at(DAY) if churned else None,
        )
        answers(org_a, [3], account=account)
        return account

    detractor_account(365)  # a new term a year after its detractor answer: saved
    detractor_account(364)  # a day short of a year: not saved
    detractor_account(400, churned=True)  # churned: not saved
    loop = compute(org_a, "loop_health")
    assert (loop.saved, loop.detractor_accounts) == (1, 3)
    assert loop.save_rate == pytest.approx(1 / 3)

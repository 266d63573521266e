"""Reads behind the metrics service (insights.metrics): SQL aggregates, shaped in Python.

Every query names the organization and the date range in its WHERE clause. Response
figures read the daily rollup (`DailyScore`) unless the filters need the account (segment,
owner); then they read the responses through the (organization, submitted_at) index. The
per-account figures (account level, revenue at risk, segments, coverage, churn, saves) read
the whole months of the range as a few aligned blocks (`AccountSpan`, `AccountMonth`),
`RolledResponse` for each respondent's latest answer, and for the partial months at the
edges the month's row where it stands for them, else the responses; a survey, channel,
segment or owner filter reads the responses instead. The response rate reads
`InvitationDay`. On PostgreSQL the dashboard runs some reads aside, on a second
connection (`reads_aside`).
"""

import contextvars
import math
import statistics
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    DateField,
    DateTimeField,
    Exists,
    F,
    Func,
    Max,
    Min,
    OuterRef,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Trunc
from django.utils import timezone

from accounts.models import OPEN_TICKET_STATUSES, Account, Segment, SupportTicket
from accounts.segments import accounts_q
from followups.models import OPEN_STATUSES, FollowUp
from insights import metrics as m
from insights.models import (
    CONTACTED_IN_TIME,
    INVITATION_ANSWERED,
    UNDELIVERED_STATES,
    AccountMonth,
    AccountSpan,
    DailyScore,
    InvitationDay,
    LoopDay,
    LoopFollowUp,
    RolledResponse,
    ThemeDay,
    spans,
)
from responses.analysis import taxonomy_for
from responses.models import Channel, Response, ResponseTheme

LOW_HEALTH_BELOW = 50  # health score under this is "low health"
BIAS_RATIO = 0.7  # a group covered at under 70% of the overall rate warns of bias
BIAS_MIN_ACCOUNTS = 5  # ... when the group has at least this many accounts
CHURN_MIN_ACCOUNTS = 10  # per group (detractors, promoters) to tell whether score predicts
TOP_THEMES = 8

_memo: ContextVar[dict | None] = ContextVar("insights_memo", default=None)


@contextmanager
def shared_reads():
    """Within this block, reads several figures share (per-account scores) run once."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


class _Aside:
    """A read that another thread computes; `result` waits for it (and raises what it
    raised)."""

    def __init__(self, compute):
        self.compute = compute
        self.done = threading.Event()
        self.value = None
        self.error: BaseException | None = None

    def run(self):
        try:
            self.value = self.compute()
        except BaseException as exc:  # handed to the reader, in its thread
            self.error = exc
        finally:
            self.done.set()

    def result(self):
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


def _memoised(key, compute):
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    elif isinstance(memo[key], _Aside):
        memo[key] = memo[key].result()
    return memo[key]


def _aside_allowed(filters) -> bool:
    """Reads run aside on a second connection only on PostgreSQL, outside a transaction
    (another connection would not see its writes), when the setting allows, and for the
    filters the rollups serve (the reads set aside are theirs)."""
    return (
        settings.DASHBOARD_READS_ASIDE
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and _rollup_serves_accounts(filters)
    )


@contextmanager
def reads_aside(organization, filters):
    """Within `shared_reads`: the dashboard's reads that no other read waits for and that
    keep the database busiest with the least Python (the segments and their members, the
    previous period's per-account counts, the coverage base, loop health's counts and
    medians) run in a second thread
    on a connection of its own, in the caller's scope, while this one computes the rest;
    the figures wait for them where they need them. The thread closes its connection and
    is joined before the block ends. Elsewhere (SQLite, inside a transaction, filters the
    rollups cannot serve) the block does nothing and every read runs in turn."""
    memo = _memo.get()
    if memo is None or not _aside_allowed(filters):
        yield
        return
    before = filters.previous()
    reads = {
        ("segments", organization.pk): lambda: _segments_and_members(organization),
        ("account_counts", organization.pk, before): lambda: _account_counts(organization, before),
        _coverage_key(organization, filters): lambda: _coverage_rows(organization, filters),
        _loop_counts_key(organization, filters): lambda: _loop_counts_rollup(
            organization, filters, timezone.now()
        ),
        _loop_medians_key(organization, filters): lambda: _loop_medians_rollup(
            _loop_rows_in(organization, filters)
        ),
    }
    pending = {key: _Aside(compute) for key, compute in reads.items() if key not in memo}
    memo.update(pending)

    def work():
        try:
            for read in pending.values():
                read.run()
        finally:
            connection.close()  # this thread's own connection

    helper = threading.Thread(
        target=contextvars.copy_context().run, args=(work,), name="insights-reads-aside"
    )
    helper.start()
    try:
        yield
    finally:
        helper.join()


# --- Lookups for filter validation ----------------------------------------------------------


def channel_values() -> list[str]:
    return list(Channel.values)


def segment_exists(organization, segment_id: int) -> bool:
    return Segment.objects.filter(organization=organization, pk=segment_id).exists()


def survey_exists(organization, survey_id: int) -> bool:
    from surveys.models import Survey

    return Survey.objects.filter(organization=organization, pk=survey_id).exists()


def owner_exists(organization, owner_id: int) -> bool:
    from nps_platform.models import Membership

    return Membership.objects.filter(organization=organization, user_id=owner_id).exists()


# --- Sources -------------------------------------------------------------------------------


def _as_datetime(value):
    """An aware datetime from a raw query's value (SQLite hands back text or naive UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def _as_date(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def _start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _bounds(filters) -> tuple[datetime, datetime]:
    """[since 00:00, the day after until 00:00) in the current time zone."""
    return _start(filters.since), _start(filters.until + timedelta(days=1))


def _segment_accounts(organization, segment_id):
    segment = Segment.objects.get(organization=organization, pk=segment_id)
    return Account.objects.filter(organization=organization).filter(accounts_q(segment.rules))


def accounts_in_scope(organization, filters):
    """The accounts the filters are about: all, or those of the segment and owner."""
    accounts = Account.objects.filter(organization=organization)
    if filters.segment_id is not None:
        accounts = accounts.filter(pk__in=_segment_accounts(organization, filters.segment_id))
    if filters.owner_id is not None:
        accounts = accounts.filter(owner_id=filters.owner_id)
    return accounts


def responses_in(organization, filters):
    """The responses the filters select (raw, indexed by organization and submitted_at)."""
    low, high = _bounds(filters)
    responses = Response.objects.filter(
        organization=organization, submitted_at__gte=low, submitted_at__lt=high
    )
    if filters.survey_id is not None:
        responses = responses.filter(survey_id=filters.survey_id)
    if filters.channel is not None:
        responses = responses.filter(channel=filters.channel)
    if filters.segment_id is not None:
        responses = responses.filter(
            account__in=_segment_accounts(organization, filters.segment_id)
        )
    if filters.owner_id is not None:
        responses = responses.filter(account__owner_id=filters.owner_id)
    return responses


def _response_filters(organization, filters, *, prefix: str = "") -> Q:
    """What `responses_in` selects, as conditions on a related response (`prefix`), so a
    query over a table pointing at responses joins them once instead of a subquery."""
    low, high = _bounds(filters)
    q = Q(
        **{
            f"{prefix}organization": organization,
            f"{prefix}submitted_at__gte": low,
            f"{prefix}submitted_at__lt": high,
        }
    )
    if filters.survey_id is not None:
        q &= Q(**{f"{prefix}survey_id": filters.survey_id})
    if filters.channel is not None:
        q &= Q(**{f"{prefix}channel": filters.channel})
    if filters.segment_id is not None:
        q &= Q(**{f"{prefix}account__in": _segment_accounts(organization, filters.segment_id)})
    if filters.owner_id is not None:
        q &= Q(**{f"{prefix}account__owner_id": filters.owner_id})
    return q


def _rollup_in(organization, filters, model=DailyScore):
    """A daily rollup's rows (DailyScore, or another kept per day, survey and channel) for
    the period and the filters it can serve."""
    rows = model.objects.filter(
        organization=organization, day__gte=filters.since, day__lte=filters.until
    )
    if filters.survey_id is not None:
        rows = rows.filter(survey_id=filters.survey_id)
    if filters.channel is not None:
        rows = rows.filter(channel=filters.channel)
    return rows


def _source(organization, filters, *, raw: bool = False):
    """(queryset, count aggregate factory, day field) from the rollup or the responses."""
    if raw or filters.needs_raw:
        return (
            responses_in(organization, filters),
            lambda q=None: Count("id", filter=q),
            "submitted_at",
        )
    return (
        _rollup_in(organization, filters),
        lambda q=None: Sum("responses", filter=q),
        "day",
    )


PROMOTER_Q = Q(score__gte=9)
PASSIVE_Q = Q(score__gte=7, score__lte=8)
DETRACTOR_Q = Q(score__lte=6)


def _period_start(kind: str, day_field: str = "day"):
    """The first day of the week, month or quarter holding a date column, as a date. On
    PostgreSQL truncated as a timestamp without time zone: the implicit cast of a date to
    a timestamp with one (which a plain DATE_TRUNC picks) converts every row."""
    if connection.vendor == "postgresql":
        return Func(
            Value(kind),
            Cast(day_field, output_field=_NaiveDateTime()),
            function="DATE_TRUNC",
            output_field=DateField(),
            template="%(function)s(%(expressions)s)::date",
        )
    return Trunc(day_field, kind, output_field=DateField())


class _NaiveDateTime(DateTimeField):
    """PostgreSQL's timestamp without time zone, for a cast only."""

    def db_type(self, connection):
        return "timestamp"

    def cast_db_type(self, connection):
        return "timestamp"


def _rollup_cells(organization, filters) -> dict[tuple[date, int], tuple[int, int]]:
    """{(period start, score): (answers, answers with a comment)} over the range from the
    daily rollup: one grouped read that the headline, the trend, the histogram and the
    verbatim rate share."""

    def read():
        rows = (
            _rollup_in(organization, filters)
            .annotate(bucket=_period_start(filters.period))
            .values("bucket", "score")
            .annotate(n=Sum("responses"), c=Sum("with_comment"))
            .order_by()
        )
        return {
            (_as_date(row["bucket"]), row["score"]): (row["n"] or 0, row["c"] or 0) for row in rows
        }

    key = ("rollup_cells", organization.pk, filters.since, filters.until, filters.period)
    return _memoised((*key, filters.survey_id, filters.channel), read)


def _rollup_by_score(organization, filters) -> dict[int, tuple[int, int]]:
    """{score: (answers, answers with a comment)} over the range, from `_rollup_cells`."""
    by_score: dict[int, tuple[int, int]] = {}
    for (_, score), (n, c) in _rollup_cells(organization, filters).items():
        total, commented = by_score.get(score, (0, 0))
        by_score[score] = (total + n, commented + c)
    return by_score


def category_counts(organization, filters, *, raw: bool = False) -> tuple[int, int, int]:
    """(promoters, passives, detractors) in one conditional-count query."""
    if not (raw or filters.needs_raw):
        by_score = _rollup_by_score(organization, filters)
        return tuple(
            sum(n for score, (n, _) in by_score.items() if low <= score <= high)
            for low, high in ((9, 10), (7, 8), (0, 6))
        )
    rows, n, _ = _source(organization, filters, raw=raw)
    totals = rows.aggregate(p=n(PROMOTER_Q), pa=n(PASSIVE_Q), d=n(DETRACTOR_Q))
    return totals["p"] or 0, totals["pa"] or 0, totals["d"] or 0


def category_counts_by_period(organization, filters, *, raw: bool = False) -> dict:
    """{period start: (promoters, passives, detractors)} in one grouped query."""
    if not (raw or filters.needs_raw):
        out: dict[date, tuple[int, int, int]] = {}
        for (start, score), (n, _) in _rollup_cells(organization, filters).items():
            p, pa, d = out.get(start, (0, 0, 0))
            out[start] = (
                (p + n, pa, d) if score >= 9 else (p, pa + n, d) if score >= 7 else (p, pa, d + n)
            )
        return out
    rows, n, day_field = _source(organization, filters, raw=raw)
    kind = filters.period
    bucket = Trunc(day_field, kind, output_field=DateField())
    grouped = (
        rows.annotate(bucket=bucket)
        .values("bucket")
        .annotate(p=n(PROMOTER_Q), pa=n(PASSIVE_Q), d=n(DETRACTOR_Q))
        .order_by()
    )
    out = {}
    for row in grouped:
        start = row["bucket"]
        if isinstance(start, datetime):
            start = start.date()
        out[start] = (row["p"] or 0, row["pa"] or 0, row["d"] or 0)
    return out


def score_histogram(organization, filters, *, raw: bool = False) -> list[int]:
    counts = [0] * 11
    if not (raw or filters.needs_raw):
        for score, (n, _) in _rollup_by_score(organization, filters).items():
            counts[score] = n
        return counts
    rows, n, _ = _source(organization, filters, raw=raw)
    for row in rows.values("score").annotate(k=n()).order_by():
        counts[row["score"]] = row["k"] or 0
    return counts


def comment_counts(organization, filters, *, raw: bool = False) -> tuple[int, int]:
    """(responses, responses with a comment)."""
    if not (raw or filters.needs_raw):
        by_score = _rollup_by_score(organization, filters).values()
        return sum(n for n, _ in by_score), sum(c for _, c in by_score)
    totals = responses_in(organization, filters).aggregate(
        n=Count("id"), c=Count("id", filter=Q(has_comment=True))
    )
    return totals["n"] or 0, totals["c"] or 0


# --- Segments ------------------------------------------------------------------------------


def _account_counts(organization, filters, *, raw: bool = False) -> pd.DataFrame:
    """Per account: category counts of its answers in the filters' range (one query)."""
    if not raw and _rollup_serves_accounts(filters):
        sql, params = _account_parts(organization, filters, latest=False)
        # An account whose answers in a month all came before the range adds up to none.
        query = (
            f"SELECT account_id, SUM(p), SUM(pa), SUM(d) FROM ({sql}) t GROUP BY account_id "  # noqa: S608 - built from table names
            "HAVING SUM(p) + SUM(pa) + SUM(d) > 0"
        )
    else:
        query, params = (
            responses_in(organization, filters)
            .filter(account__isnull=False)
            .values_list("account_id")
            .annotate(
                p=Count("id", filter=PROMOTER_Q),
                pa=Count("id", filter=PASSIVE_Q),
                d=Count("id", filter=DETRACTOR_Q),
            )
            .order_by()
            .query.sql_with_params()
        )
    names = ["account_id", "p", "pa", "d"]
    columns = _fetch_columns(query, params, names)
    frame = pd.DataFrame(
        {name: _int_column(values) for name, values in zip(names, columns, strict=True)}
    )
    return frame.set_index("account_id")


def _int_column(values) -> np.ndarray:
    """A column of integers (or booleans) as an integer array, in one pass of numpy."""
    return np.fromiter(values, dtype=np.int64, count=len(values))


def _segment_members(organization, segments) -> tuple[np.ndarray, np.ndarray]:
    """(account ids, membership matrix: a column of booleans per segment) in one query:
    each segment's rules as a CASE over the accounts, instead of one query per segment."""
    flags = {}
    for index, segment in enumerate(segments):
        condition = accounts_q(segment.rules)
        flags[f"segment_{index}"] = (
            Case(When(condition, then=Value(True)), default=Value(False))
            if condition
            else Value(True)
        )
    sql, params = (
        Account.objects.filter(organization=organization)
        .annotate(**flags)
        .values_list("pk", *flags)
        .order_by()
        .query.sql_with_params()
    )
    ids, *columns = _fetch_columns(sql, params, ["id", *flags])
    # Flags: booleans, or 0 and 1 on SQLite.
    members = np.empty((len(ids), len(columns)), dtype=bool)
    for index, values in enumerate(columns):
        members[:, index] = np.array(values, dtype=bool)
    return _int_column(ids), members


def _segment_sums(account_ids, counts, member_ids, members) -> np.ndarray:
    """Per segment, the (p, pa, d) sums of the accounts that belong to it: a matrix product
    of the membership (0/1) and the per-account counts, aligned on account id."""
    position = pd.Index(member_ids).get_indexer(account_ids)
    known = position >= 0
    inside = np.zeros((len(account_ids), members.shape[1]), dtype=np.int64)
    inside[known] = members[position[known]]
    return inside.T @ counts


def _segments_and_members(organization):
    """The organization's segments by name, with `_segment_members` (None when there is
    no segment)."""
    segments = list(Segment.objects.filter(organization=organization).order_by("name"))
    return segments, (_segment_members(organization, segments) if segments else None)


def segment_rows(organization, filters) -> list:
    segments, members = _memoised(
        ("segments", organization.pk), lambda: _segments_and_members(organization)
    )
    if not segments:
        return []
    member_ids, members = members
    current = account_scores(organization, filters)
    before = filters.previous()
    earlier = _memoised(
        ("account_counts", organization.pk, before), lambda: _account_counts(organization, before)
    )
    now_sums = _segment_sums(
        current["account_id"].to_numpy(dtype=np.int64),
        current[["p", "pa", "d"]].to_numpy(dtype=np.int64),
        member_ids,
        members,
    )
    then_sums = _segment_sums(
        earlier.index.to_numpy(dtype=np.int64),
        earlier[["p", "pa", "d"]].to_numpy(dtype=np.int64),
        member_ids,
        members,
    )
    out = []
    for segment, now_part, then_part in zip(segments, now_sums, then_sums, strict=True):
        nps = m.Nps.of(*(int(v) for v in now_part))
        out.append(
            m.SegmentRow(
                segment_id=segment.pk,
                name=segment.name,
                nps=nps,
                change=m.change(nps, m.Nps.of(*(int(v) for v in then_part))),
            )
        )
    return out


# --- Accounts ------------------------------------------------------------------------------


def classify_mean(mean: float) -> str:
    """The category of an account's mean score, on the same 0–6 / 7–8 / 9–10 cut points."""
    if mean >= 9:
        return "promoter"
    if mean >= 7:
        return "passive"
    return "detractor"


def _rollup_serves_accounts(filters) -> bool:
    """AccountMonth and RolledResponse know no survey or channel, and segment and owner
    pick a respondent's latest answer among some accounts only: those read the responses."""
    return not filters.needs_raw and filters.survey_id is None and filters.channel is None


def _month_split(filters):
    """The whole months inside the range, as [first, end) dates (None when there is none),
    and the datetime ranges before and after them (the edges, read from the answers)."""
    low, high = _bounds(filters)
    first = filters.since if filters.since.day == 1 else m._next_start(filters.since, "month")
    end = (filters.until + timedelta(days=1)).replace(day=1)
    if first >= end:
        return None, [(low, high)]
    edges = [(low, _start(first))] if low < _start(first) else []
    if _start(end) < high:
        edges.append((_start(end), high))
    return (first, end), edges


_COUNTED = """
    SELECT account_id, CASE WHEN score >= 9 THEN 1 ELSE 0 END AS p,
        CASE WHEN score BETWEEN 7 AND 8 THEN 1 ELSE 0 END AS pa,
        CASE WHEN score <= 6 THEN 1 ELSE 0 END AS d, submitted_at AS last_at,
        CASE WHEN score <= 6 THEN submitted_at END AS first_detractor_at,
        score AS lowest_score, 0 AS score, 0 AS respondents
    FROM {responses}
    WHERE organization_id = %s AND account_id IS NOT NULL
        AND submitted_at >= %s AND submitted_at < %s
"""
_UNCOUNTED = """
    SELECT account_id, CASE WHEN score >= 9 THEN -1 ELSE 0 END AS p,
        CASE WHEN score BETWEEN 7 AND 8 THEN -1 ELSE 0 END AS pa,
        CASE WHEN score <= 6 THEN -1 ELSE 0 END AS d, NULL, NULL, NULL, 0, 0
    FROM {responses}
    WHERE organization_id = %s AND account_id IS NOT NULL
        AND submitted_at >= %s AND submitted_at < %s
"""
_LATEST = """
    SELECT account_id, 0, 0, 0, NULL, NULL, NULL, score, 1 FROM {facts}
    WHERE organization_id = %s AND account_id IS NOT NULL AND next_at IS NULL
        AND submitted_at >= %s AND submitted_at < %s
"""
# The accounts with an answer in a month at or after a moment (their row of the month
# cannot stand for the part of the month before it).
_LATER_IN_MONTH = """
    AND account_id IN (SELECT account_id FROM {months}
                       WHERE organization_id = %s AND month = %s AND last_at >= %s)
"""
_SUPERSEDED_AFTER = """
    SELECT account_id, 0, 0, 0, NULL, NULL, NULL, score, 1 FROM {facts}
    WHERE organization_id = %s AND account_id IS NOT NULL AND next_at IS NOT NULL
        AND next_at >= %s AND submitted_at >= %s AND submitted_at < %s
"""


def _account_parts(organization, filters, *, latest: bool) -> tuple[str, list]:
    """Rows (account_id, p, pa, d, last_at, first_detractor_at, lowest_score, score,
    respondents) that add up, per account, to its category counts, latest answer, first
    detractor answer and lowest score in the range, and (with `latest`) to the sum of its
    respondents' latest scores and their number: whole months as aligned blocks from
    AccountSpan and AccountMonth; a range's last, partial month from the month's row for
    the accounts with no answer after the range in it, else from the answers; a first,
    partial month from the answers (for the counts alone, when it is most of the month,
    from the month's row less the answers before the range). A respondent's latest answer
    in [low, high) is one in the range whose next answer is none (AccountMonth counts
    those per month) or at or after high."""
    tables = {
        "months": AccountMonth._meta.db_table,
        "spans": AccountSpan._meta.db_table,
        "responses": Response._meta.db_table,
        "facts": RolledResponse._meta.db_table,
    }
    months, edges = _month_split(filters)
    low, high = _bounds(filters)
    org = organization.pk
    parts: list[str] = []
    params: list = []
    columns = (
        "SELECT account_id, promoters AS p, passives AS pa, detractors AS d, last_at, "
        "first_detractor_at, lowest_score, "
        + (
            "latest_score_sum AS score, latest_respondents AS respondents "
            if latest
            else "0 AS score, 0 AS respondents "
        )
    )
    # The whole months as aligned blocks: a few rows per account, not one per month.
    for first, length in [] if months is None else spans(*months):
        if length == 1:
            parts.append(columns + "FROM {months} WHERE organization_id = %s AND month = %s")
            params += [org, first]
        else:
            parts.append(
                columns + "FROM {spans} WHERE organization_id = %s AND months = %s AND month = %s"
            )
            params += [org, length, first]
    for edge_low, edge_high in edges:
        month = timezone.localtime(edge_low).date().replace(day=1)
        following = _start(m._next_start(month, "month"))
        if edge_low == _start(month):
            # A month's first part (the range ends inside it): an account whose answers in
            # the month all came before the end reads its row of the month; the others,
            # their answers.
            parts.append(
                columns + "FROM {months} WHERE organization_id = %s AND month = %s AND last_at < %s"
            )
            params += [org, month, edge_high]
            parts.append(_COUNTED + _LATER_IN_MONTH)
            params += [org, edge_low, edge_high, org, month, edge_high]
            if latest:
                parts.append(_LATEST + _LATER_IN_MONTH)
                params += [org, edge_low, edge_high, org, month, edge_high]
        elif (
            not latest
            and edge_high == following
            and edge_low - _start(month) < following - edge_low
        ):
            # A month's last part, mostly: the counts of its row (they add up) less those
            # of the answers before the range.
            parts.append(columns + "FROM {months} WHERE organization_id = %s AND month = %s")
            params += [org, month]
            parts.append(_UNCOUNTED)
            params += [org, _start(month), edge_low]
        else:
            parts.append(_COUNTED)
            params += [org, edge_low, edge_high]
            if latest:
                parts.append(_LATEST)
                params += [org, edge_low, edge_high]
    if latest:
        parts.append(_SUPERSEDED_AFTER)
        params += [org, high, low, high]
    sql = " UNION ALL ".join(part.format(**tables) for part in parts)
    return sql, params


def _moment(expression: str) -> str:
    """A timestamp column as the frame reads it fast: microseconds since the epoch on
    PostgreSQL (an integer, not a datetime parsed per row), ISO text on SQLite."""
    if connection.vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM {expression}) * 1000000)::bigint"
    return expression


def _moments(values) -> pd.Series:
    """Aware UTC timestamps (NaT when missing) from what `_moment` selected (a column of
    the fetched rows)."""
    if connection.vendor == "postgresql":
        # Microseconds as doubles (None: NaN) are exact below 2**53, centuries away.
        return pd.to_datetime(np.array(values, dtype=float), unit="us", utc=True)
    return pd.to_datetime(np.array(values, dtype=object), utc=True, format="ISO8601")


def _day_number(expression: str) -> str:
    """A date column as days since 1970-01-01 (an integer the frame reads in bulk, not a
    date object per row)."""
    if connection.vendor == "postgresql":
        return f"({expression} - DATE '1970-01-01')"
    return f"CAST(julianday({expression}) - 2440587.5 AS INTEGER)"


def _account_columns() -> str:
    expressions = [
        "s.account_id", "s.score", "s.respondents", _moment("s.last_at"), "s.p", "s.pa",
        "s.d", _moment("s.first_detractor_at"), "s.lowest_score", "a.id IS NOT NULL",
        # ARR in whole cents, exact (it has two decimal places).
        "a.name", "CAST(ROUND(a.arr * 100) AS BIGINT)", _day_number("a.renewal_date"),
        _moment("a.churned_at"), "a.last_score", _moment("a.last_score_at"),
    ]  # fmt: skip
    return ", ".join(
        f'{expression} AS "{name}"'
        for expression, name in zip(expressions, FETCHED_COLUMNS, strict=True)
    )


FETCHED_COLUMNS = [
    "account_id", "score", "respondents", "last_at", "p", "pa", "d", "first_detractor_at",
    "lowest_score", "known", "name", "arr_cents", "renewal_day", "churned_at", "last_score",
    "last_score_at",
]  # fmt: skip
FRAME_COLUMNS = [*FETCHED_COLUMNS, "arr_value", "renewal_date", "category"]


def _fetch_columns(query: str, params, names: list[str]) -> list:
    """The values of each named column of a query's rows. On PostgreSQL one row of arrays
    (an array_agg per column, filled in the same pass, so they stay aligned), which the
    driver parses column by column, with no tuple per row; elsewhere the rows, transposed."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The subquery's columns renamed by position: an ORM query's need not be.
            aliases = ", ".join(f"c{index}" for index in range(len(names)))
            aggregates = ", ".join(f"array_agg(q.c{index})" for index in range(len(names)))
            cursor.execute(f"SELECT {aggregates} FROM ({query}) q({aliases})", params)  # noqa: S608 - compiled ORM SQL
            return [values or [] for values in cursor.fetchone()]
        cursor.execute(query, params)
        rows = cursor.fetchall()
    return list(zip(*rows, strict=True)) if rows else [()] * len(names)


def _account_rows_rollup(organization, filters) -> list:
    sql, params = _account_parts(organization, filters, latest=True)
    accounts_table = Account._meta.db_table
    query = f"""
        SELECT {_account_columns()}
        FROM (
            SELECT account_id, SUM(score) AS score, SUM(respondents) AS respondents,
                MAX(last_at) AS last_at, SUM(p) AS p, SUM(pa) AS pa, SUM(d) AS d,
                MIN(first_detractor_at) AS first_detractor_at,
                MIN(lowest_score) AS lowest_score
            FROM ({sql}) t
            GROUP BY account_id
        ) s
        LEFT JOIN {accounts_table} a ON a.id = s.account_id AND a.organization_id = %s
    """  # noqa: S608 - table names from _meta
    return _fetch_columns(query, (*params, organization.pk), FETCHED_COLUMNS)


def _account_rows_raw(organization, filters) -> list:
    inner = (
        responses_in(organization, filters)
        .filter(account__isnull=False)
        .values("id", "account_id", "contact_id", "score", "submitted_at")
        .order_by()
    )
    sql, params = inner.query.sql_with_params()
    accounts_table = Account._meta.db_table
    # The account's columns come in the same statement (a join on the grouped rows), not
    # through a second query listing every account id.
    query = f"""
        SELECT {_account_columns()}
        FROM (
            SELECT account_id, SUM(CASE WHEN rn = 1 THEN score ELSE 0 END) AS score,
                COUNT(CASE WHEN rn = 1 THEN 1 END) AS respondents,
                MAX(submitted_at) AS last_at,
                COUNT(CASE WHEN score >= 9 THEN 1 END) AS p,
                COUNT(CASE WHEN score BETWEEN 7 AND 8 THEN 1 END) AS pa,
                COUNT(CASE WHEN score <= 6 THEN 1 END) AS d,
                MIN(CASE WHEN score <= 6 THEN submitted_at END) AS first_detractor_at,
                MIN(score) AS lowest_score
            FROM (
                SELECT t.account_id, t.score, t.submitted_at, ROW_NUMBER() OVER (
                    PARTITION BY COALESCE(t.contact_id, -t.id)
                    ORDER BY t.submitted_at DESC, t.id DESC
                ) AS rn
                FROM ({sql}) t
            ) latest
            GROUP BY account_id
        ) s
        LEFT JOIN {accounts_table} a ON a.id = s.account_id AND a.organization_id = %s
    """  # noqa: S608 - compiled ORM SQL and table names from _meta
    return _fetch_columns(query, (*params, organization.pk), FETCHED_COLUMNS)


_INTEGER_COLUMNS = ("account_id", "respondents", "p", "pa", "d")
_FLOAT_COLUMNS = ("score", "lowest_score", "arr_cents", "renewal_day", "last_score")
_MOMENT_COLUMNS = ("last_at", "first_detractor_at", "churned_at", "last_score_at")


def _account_frame(columns) -> pd.DataFrame:
    """The per-account columns as a frame, each converted in bulk by numpy (not a frame
    of Python objects inferred cell by cell): integers; the score sum, lowest and last
    scores, ARR in cents and the renewal day as doubles (None: NaN; exact, far below
    2**53); the moments as UTC timestamps; names as they came. Derived: ARR as a double
    (`arr_value`, what weighs and orders), the renewal date (NaT: none), and the mean of
    the respondents' latest scores (`score`) with its category."""
    data = {}
    for name, values in zip(FETCHED_COLUMNS, columns, strict=True):
        if name in _INTEGER_COLUMNS:
            data[name] = np.fromiter(values, dtype=np.int64, count=len(values))
        elif name in _FLOAT_COLUMNS:
            data[name] = np.array(values, dtype=float)
        elif name in _MOMENT_COLUMNS:
            data[name] = _moments(values)
        elif name == "known":
            data[name] = np.array(values, dtype=bool)
        else:
            data[name] = list(values)
    # The cents divided in IEEE doubles: the same double as the decimal ARR cast to one.
    data["arr_value"] = data["arr_cents"] / 100
    data["renewal_date"] = pd.to_datetime(data["renewal_day"], unit="D")
    # The mean of the respondents' latest scores: integer sums in SQL (cheaper than a
    # decimal average), divided here; NaN for an account none of whose respondents' latest
    # answer is its own, as AVG over no rows gave NULL.
    with np.errstate(invalid="ignore", divide="ignore"):
        data["score"] = data["score"] / data["respondents"]
    # classify_mean, for the whole column (a NaN mean is a detractor, as there).
    data["category"] = np.select(
        [data["score"] >= 9, data["score"] >= 7], ["promoter", "passive"], "detractor"
    )
    return pd.DataFrame(data, columns=FRAME_COLUMNS)


def _account_scores(organization, filters, *, raw: bool = False) -> pd.DataFrame:
    """Per account with answers in the period: the mean of each respondent's latest score
    (one answer per contact, so a big team counts once per person, and the account once),
    the respondents, the latest answer's time, and the category counts of all its answers
    (p, pa, d: what segments add up). One query, from the rollups when they serve the
    filters (AccountMonth and RolledResponse), else one windowed query over the answers."""
    if not raw and _rollup_serves_accounts(filters):
        columns = _account_rows_rollup(organization, filters)
    else:
        columns = _account_rows_raw(organization, filters)
    return _account_frame(columns)


def account_scores(organization, filters, *, raw: bool = False) -> pd.DataFrame:
    return _memoised(
        ("account_scores", organization.pk, filters, raw),
        lambda: _account_scores(organization, filters, raw=raw),
    )


def account_level(organization, filters):
    frame = account_scores(organization, filters)
    if frame.empty:
        return m.AccountLevel(accounts=0, nps=m.Nps.empty(), revenue_weighted_nps=None)
    category = frame["category"].to_numpy(dtype=object)
    is_ = {c: category == c for c in ("promoter", "passive", "detractor")}
    nps = m.Nps.of(*(int(is_[c].sum()) for c in ("promoter", "passive", "detractor")))
    weighted = None
    # ARR as doubles (a missing ARR weighs nothing).
    arr = pd.Series(np.nan_to_num(frame["arr_value"].to_numpy()), index=frame.index)
    total = arr.sum()
    if total > 0:
        weights = {c: arr[is_[c]].sum() for c in ("promoter", "detractor")}
        # Weighted shares in the one formula: ARR stands in for head counts.
        weighted = m.nps_score(
            weights["promoter"], total - weights["promoter"] - weights["detractor"],
            weights["detractor"],
        )  # fmt: skip
    return m.AccountLevel(accounts=len(frame), nps=nps, revenue_weighted_nps=weighted)


def _arr_sum(cents: np.ndarray, present: np.ndarray) -> Decimal:
    """The exact sum of ARRs given in cents, as their Decimals add up (a missing ARR adds
    Decimal 0): two decimal places when one of them has an ARR, else 0."""
    return _amount(cents[present]) if present.any() else Decimal(0)


def revenue_at_risk(organization, filters):
    frame = account_scores(organization, filters)
    zero = Decimal("0")
    if frame.empty:
        return m.RevenueAtRisk(organization.currency, zero, 0, zero, 0, zero, 0, [])
    used = ["account_id", "name", "arr_cents", "arr_value", "score", "renewal_day"]
    risk = frame.loc[(frame["category"] == "detractor") & frame["churned_at"].isna(), used]
    # ARR in exact integer cents (a missing ARR: 0), summed by numpy.
    cents_column = risk["arr_cents"].to_numpy()
    present = ~np.isnan(cents_column)
    cents = np.nan_to_num(cents_column).astype(np.int64)
    scores = risk["score"].to_numpy()
    danger = scores <= 3  # a NaN mean is not in the danger zone
    today = timezone.localdate()
    horizon = today + timedelta(days=m.RENEWAL_WINDOW_DAYS)
    renewal = risk["renewal_day"].to_numpy()
    epoch = date(1970, 1, 1)
    # Renewing within the window (no renewal date, NaN, compares False).
    renewing = (renewal >= (today - epoch).days) & (renewal <= (horizon - epoch).days)
    # By ARR, highest first (doubles order exact two-place amounts as the Decimals do),
    # then by score, lowest first (NaN last); ties keep the frame's order, as a stable sort.
    order = np.lexsort((scores, -np.nan_to_num(risk["arr_value"].to_numpy())))
    ids, names = risk["account_id"].to_numpy(), risk["name"]
    top = [
        m.RiskAccount(
            id=int(ids[i]),
            name=names.iat[i],
            arr=Decimal(int(cents[i])).scaleb(-2) if present[i] else zero,
            # None when no respondent's latest answer is the account's (a NaN mean).
            score=None if math.isnan(scores[i]) else round(float(scores[i]), 2),
            renewal_date=(
                None if math.isnan(renewal[i]) else epoch + timedelta(days=int(renewal[i]))
            ),
            danger_zone=bool(danger[i]),
        )
        for i in order[: m.TOP_AT_RISK]
    ]
    return m.RevenueAtRisk(
        currency=organization.currency,
        total=_arr_sum(cents, present),
        accounts=len(risk),
        danger_zone=_arr_sum(cents[danger], present[danger]),
        danger_zone_accounts=int(danger.sum()),
        renewal_90d=_arr_sum(cents[renewing], present[renewing]),
        renewal_90d_accounts=int(renewing.sum()),
        top=top,
    )


# --- Rates and coverage --------------------------------------------------------------------


def _invitations_in(organization, filters):
    from surveys.models import Invitation

    low, high = _bounds(filters)
    invitations = Invitation.objects.filter(
        organization=organization, sent_at__gte=low, sent_at__lt=high
    ).exclude(state__in=UNDELIVERED_STATES)
    if filters.survey_id is not None:
        invitations = invitations.filter(survey_id=filters.survey_id)
    if filters.channel is not None:
        invitations = invitations.filter(channel=filters.channel)
    if filters.needs_raw:
        invitations = invitations.filter(account__in=accounts_in_scope(organization, filters))
    return invitations


def _invitation_totals(organization, filters, *, raw: bool = False) -> tuple[int, int]:
    """(delivered, answered) invitations of the period, in one ungrouped count: from
    InvitationDay unless the filters need the accounts (or `raw`)."""
    if not (raw or filters.needs_raw):
        days = _rollup_in(organization, filters, InvitationDay)
        totals = days.aggregate(delivered=Sum("delivered"), answered=Sum("answered"))
        return totals["delivered"] or 0, totals["answered"] or 0
    totals = _invitations_in(organization, filters).aggregate(
        # Counting a column the covering index holds (state is never null), not the id:
        # PostgreSQL then reads the index alone.
        delivered=Count("state"),
        answered=Count("state", filter=INVITATION_ANSWERED),
    )
    return totals["delivered"] or 0, totals["answered"] or 0


INVITED_CHUNK = 500


def _invited_among(organization, filters, account_ids) -> set:
    """Which of these accounts had a delivered invitation in the period: one indexed probe
    per account (organization, account, sent_at), by chunks, instead of grouping every
    invitation of the period."""
    invited: set = set()
    for first in range(0, len(account_ids), INVITED_CHUNK):
        chunk = account_ids[first : first + INVITED_CHUNK]
        invited.update(
            _invitations_in(organization, filters)
            .filter(account_id__in=chunk)
            .values_list("account_id", flat=True)
            .distinct()
            .order_by()
        )
    return invited


def rates(organization, filters):
    delivered, answered = _invitation_totals(organization, filters)
    responses, with_comment = comment_counts(organization, filters)
    return m.Rates(
        delivered=delivered,
        answered=answered,
        response_rate=answered / delivered if delivered else None,
        with_comment=with_comment,
        verbatim_rate=with_comment / responses if responses else None,
        responses=responses,
    )


# An account's ARR in whole cents (none: 0), exact: ARR has two decimal places.
_CENTS = Coalesce(
    Func(
        F("arr"),
        function="ROUND",
        template="CAST(ROUND(%(expressions)s * 100) AS BIGINT)",
        output_field=BigIntegerField(),
    ),
    Value(0),
)


def _amount(cents: np.ndarray) -> Decimal:
    """The exact sum of amounts in cents, as a two-place Decimal (0 for none): in numpy
    while the total cannot overflow 64 bits, else in Python integers."""
    if not len(cents):
        return Decimal(0)
    if int(np.abs(cents).max()) * len(cents) < 2**62:
        total = int(cents.sum())
    else:
        total = sum(int(v) for v in cents)
    return Decimal(total).scaleb(-2)


def _coverage_key(organization, filters):
    return ("coverage_base", organization.pk, filters)


def _coverage_rows(organization, filters) -> list:
    """The accounts coverage counts (in scope, not churned before the period), column by
    column: id, ARR in cents, health score and whether a ticket is open."""
    low, _ = _bounds(filters)
    open_ticket = Exists(
        SupportTicket.objects.filter(
            organization=organization,
            account_id=OuterRef("pk"),
            status__in=OPEN_TICKET_STATUSES,
        )
    )
    sql, params = (
        accounts_in_scope(organization, filters)
        .filter(Q(churned_at__isnull=True) | Q(churned_at__gte=low))
        .annotate(open_ticket=open_ticket, arr_cents=_CENTS)
        .values_list("pk", "arr_cents", "health_score", "open_ticket")
        .order_by()
        .query.sql_with_params()
    )
    return _fetch_columns(sql, params, ["id", "arr_cents", "health_score", "open_ticket"])


def coverage(organization, filters):
    """Who the period's answers and invitations reach, against the base; warns when
    low-health or open-ticket accounts are reached well below the overall rate."""
    answered = account_scores(organization, filters)["account_id"].to_numpy()
    # Column by column in bulk by numpy, not a frame of objects.
    ids, cents, health, tickets = _memoised(
        _coverage_key(organization, filters), lambda: _coverage_rows(organization, filters)
    )
    ids = _int_column(ids)
    # An account answered in the period is surveyed; only the others need their
    # invitations looked up.
    surveyed = np.isin(ids, answered)
    unanswered = ids[~surveyed].tolist()
    if unanswered:
        surveyed |= np.isin(ids, list(_invited_among(organization, filters, unanswered)))
    # A missing health score is not low (NaN compares False).
    low_health = np.array(health, dtype=float) < LOW_HEALTH_BELOW
    ticket = np.array(tickets, dtype=bool)
    cents = np.fromiter(cents, dtype=np.int64, count=len(cents))
    totals = {
        "total": len(ids),
        "surveyed": int(surveyed.sum()),
        "arr_all": _amount(cents),
        "arr_surveyed": _amount(cents[surveyed]),
        "low": int(low_health.sum()),
        "low_surveyed": int((low_health & surveyed).sum()),
        "tickets": int(ticket.sum()),
        "tickets_surveyed": int((ticket & surveyed).sum()),
    }

    def share(part, whole):
        return float(part) / float(whole) if whole else None

    account_share = share(totals["surveyed"], totals["total"])
    low_share = share(totals["low_surveyed"], totals["low"])
    ticket_share = share(totals["tickets_surveyed"], totals["tickets"])
    under = []
    for name, group_share, group_size in (
        ("low-health accounts", low_share, totals["low"]),
        ("accounts with open tickets", ticket_share, totals["tickets"]),
    ):
        if (
            account_share
            and group_share is not None
            and group_size >= BIAS_MIN_ACCOUNTS
            and group_share < BIAS_RATIO * account_share
        ):
            under.append(f"{name} ({group_share:.0%})")
    if not totals["total"]:
        message = "No accounts to cover yet."
    elif under:
        message = (
            f"Sampling bias: {' and '.join(under)} were surveyed far less than accounts "
            f"overall ({account_share:.0%}), so the score may look better than it is."
        )
    else:
        message = (
            f"{totals['surveyed']} of {totals['total']} accounts surveyed "
            f"({account_share:.0%}); no group at risk is under-covered."
        )
    return m.Coverage(
        accounts_total=totals["total"],
        accounts_surveyed=totals["surveyed"],
        account_share=account_share,
        arr_share=share(totals["arr_surveyed"] or 0, totals["arr_all"] or 0),
        low_health_share=low_share,
        open_ticket_share=ticket_share,
        bias_warning=bool(under),
        message=message,
    )


# --- Loop health ---------------------------------------------------------------------------


def _median_hours(followups) -> tuple[float | None, float | None]:
    """Median hours from opening to first contact, and to close (one query)."""
    if connection.vendor == "postgresql":
        inner = followups.values("created_at", "first_contact_at", "closed_at").order_by()
        sql, params = inner.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP "  # noqa: S608 - compiled ORM SQL
                "(ORDER BY EXTRACT(EPOCH FROM t.first_contact_at - t.created_at)), "
                "percentile_cont(0.5) WITHIN GROUP "
                f"(ORDER BY EXTRACT(EPOCH FROM t.closed_at - t.created_at)) FROM ({sql}) t",
                params,
            )
            values = cursor.fetchone()
        return tuple(None if v is None else float(v) / 3600 for v in values)
    rows = list(followups.values_list("created_at", "first_contact_at", "closed_at"))

    def median(index):
        spans = [(row[index] - row[0]).total_seconds() for row in rows if row[index] is not None]
        return statistics.median(spans) / 3600 if spans else None

    return median(1), median(2)


def _loop_rows_in(organization, filters):
    """The LoopFollowUp rows of the detractor answers the filters select (survey and
    channel included; segment and owner need the accounts: those read the follow-ups)."""
    low, high = _bounds(filters)
    rows = LoopFollowUp.objects.filter(
        organization=organization, submitted_at__gte=low, submitted_at__lt=high, score__lte=6
    )
    if filters.survey_id is not None:
        rows = rows.filter(survey_id=filters.survey_id)
    if filters.channel is not None:
        rows = rows.filter(channel=filters.channel)
    return rows


def _loop_counts_rollup(organization, filters, moment):
    """`_loop_counts` from the rollups: the counts per outcome from LoopDay (a row per day,
    survey, channel and outcome), the overdue ones (open and due before `moment`, which
    moves) from LoopFollowUp's open rows."""
    days = LoopDay.objects.filter(
        organization=organization, day__gte=filters.since, day__lte=filters.until
    )
    if filters.survey_id is not None:
        days = days.filter(survey_id=filters.survey_id)
    if filters.channel is not None:
        days = days.filter(channel=filters.channel)
    overdue = dict(
        _loop_rows_in(organization, filters)
        .filter(status__in=OPEN_STATUSES, due_at__lt=moment)
        .values_list("outcome")
        # A column the covering index of open follow-ups holds (never null), not the id:
        # PostgreSQL then reads the index alone.
        .annotate(n=Count("due_at"))
        .order_by()
    )
    return [
        {**row, "overdue": overdue.get(row["outcome"], 0)}
        for row in days.values("outcome")
        .annotate(n=Sum("followups"), in_sla=Sum("in_sla"), open=Sum("open"))
        .order_by()
    ]


def _loop_medians_rollup(rows) -> tuple[float | None, float | None]:
    """`_median_hours` from LoopFollowUp rows: on PostgreSQL one pass over the covering
    index sorting the precomputed seconds (doubles, not intervals computed per row)."""
    if connection.vendor != "postgresql":
        return _median_hours(rows)
    sql, params = rows.values("contact_seconds", "close_seconds").order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t.contact_seconds), "  # noqa: S608 - compiled ORM SQL
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY t.close_seconds) FROM ({sql}) t",
            params,
        )
        values = cursor.fetchone()
    return tuple(None if v is None else float(v) / 3600 for v in values)


def _loop_counts_key(organization, filters):
    return ("loop_counts", organization.pk, filters.since, filters.until, filters.survey_id,
            filters.channel)  # fmt: skip


def _loop_medians_key(organization, filters):
    return ("loop_medians", organization.pk, filters.since, filters.until, filters.survey_id,
            filters.channel)  # fmt: skip


def loop_health(organization, filters, *, raw: bool = False):
    """The detractor follow-ups of the period's answers: SLA, speed, outcomes, saves. Read
    from the loop rollups (LoopDay, LoopFollowUp) unless the filters need the accounts (or
    `raw`)."""
    responses = responses_in(organization, filters).filter(DETRACTOR_Q)
    moment = timezone.now()
    if not (raw or filters.needs_raw):
        by_outcome = _memoised(
            _loop_counts_key(organization, filters),
            lambda: _loop_counts_rollup(organization, filters, moment),
        )
        to_contact, to_close = _memoised(
            _loop_medians_key(organization, filters),
            lambda: _loop_medians_rollup(_loop_rows_in(organization, filters)),
        )
    else:
        followups = FollowUp.objects.filter(organization=organization, response__in=responses)
        if connection.vendor == "postgresql":
            by_outcome, (to_contact, to_close) = _loop_counts_pg(followups, moment)
        else:
            by_outcome = _loop_counts(followups, moment)
            to_contact, to_close = _median_hours(followups)
    totals = {
        key: sum(row[key] for row in by_outcome) for key in ("n", "in_sla", "open", "overdue")
    }
    outcomes = dict(
        sorted(
            ((row["outcome"], row["n"]) for row in by_outcome if row["outcome"]),
            key=lambda item: (-item[1], item[0]),
        )
    )
    if not raw and _rollup_serves_accounts(filters):
        saved, accounts = _saves_of(account_scores(organization, filters))
    else:
        saved, accounts = _saves(responses)
    n = totals["n"]
    return m.LoopHealth(
        detractors=n,
        contacted_within_sla_share=totals["in_sla"] / n if n else None,
        median_hours_to_first_contact=to_contact,
        median_hours_to_close=to_close,
        open=totals["open"],
        overdue=totals["overdue"],
        outcomes=outcomes,
        save_rate=saved / accounts if accounts else None,
        saved=saved,
        detractor_accounts=accounts,
    )


def _loop_counts_pg(followups, moment):
    """The counts per outcome and the two medians in one statement (PostgreSQL): grouping
    sets give a row per outcome plus the total row that carries the medians."""
    inner = followups.values(
        "outcome", "status", "due_at", "first_contact_at", "closed_at", "created_at"
    ).order_by()
    sql, params = inner.query.sql_with_params()
    open_statuses = list(OPEN_STATUSES)
    query = f"""
        SELECT GROUPING(t.outcome), t.outcome, COUNT(*),
            COUNT(*) FILTER (WHERE t.first_contact_at IS NOT NULL
                             AND t.first_contact_at <= t.due_at),
            COUNT(*) FILTER (WHERE t.status = ANY(%s)),
            COUNT(*) FILTER (WHERE t.status = ANY(%s) AND t.due_at < %s),
            percentile_cont(0.5) WITHIN GROUP
                (ORDER BY EXTRACT(EPOCH FROM t.first_contact_at - t.created_at)),
            percentile_cont(0.5) WITHIN GROUP
                (ORDER BY EXTRACT(EPOCH FROM t.closed_at - t.created_at))
        FROM ({sql}) t
        GROUP BY GROUPING SETS ((t.outcome), ())
    """  # noqa: S608 - compiled ORM SQL
    with connection.cursor() as cursor:
        cursor.execute(query, (open_statuses, open_statuses, moment, *params))
        rows = cursor.fetchall()
    by_outcome = []
    medians = (None, None)
    for total_row, outcome, n, in_sla, open_, overdue, to_contact, to_close in rows:
        if total_row:
            medians = tuple(None if v is None else float(v) / 3600 for v in (to_contact, to_close))
        else:
            by_outcome.append(
                {"outcome": outcome, "n": n, "in_sla": in_sla, "open": open_, "overdue": overdue}
            )
    return by_outcome, medians


def _loop_counts(followups, moment):
    """The counts per outcome ("" for none yet), one grouped query."""
    return list(
        followups.values("outcome")
        .annotate(
            n=Count("pk"),
            in_sla=Count("pk", filter=CONTACTED_IN_TIME),
            open=Count("pk", filter=Q(status__in=OPEN_STATUSES)),
            overdue=Count("pk", filter=Q(status__in=OPEN_STATUSES, due_at__lt=moment)),
        )
        .order_by()
    )


RENEWED_AFTER_DAYS = 365


def _saved(first_at, worst, last_score, last_at, renewal_date, churned_at) -> bool:
    """The one rule for a saved detractor account (see `_saves`)."""
    first_day = timezone.localtime(first_at).date()
    improved = last_at is not None and last_at > first_at and (last_score or 0) > worst
    renewed = (
        churned_at is None
        and renewal_date is not None
        and renewal_date >= first_day + timedelta(days=RENEWED_AFTER_DAYS)
    )
    return bool(improved or renewed)


def _saves_of(frame) -> tuple[int, int]:
    """`_saves` from the per-account rows (their first detractor answer and lowest score
    in the period), for each existing account with a detractor answer: `_saved`, for the
    whole column at once."""
    used = [
        "first_detractor_at",
        "last_score_at",
        "last_score",
        "lowest_score",
        "renewal_date",
        "churned_at",
    ]
    part = frame.loc[(frame["d"] > 0) & frame["known"], used]
    first_at, last_at = part["first_detractor_at"], part["last_score_at"]
    improved = (
        last_at.notna()
        & (last_at > first_at)
        & (part["last_score"].fillna(0) > part["lowest_score"])
    )
    first_day = first_at.dt.tz_convert(timezone.get_current_timezone()).dt.tz_localize(None)
    renewal = part["renewal_date"]
    renewed = (
        part["churned_at"].isna()
        & renewal.notna()
        & (renewal >= first_day.dt.normalize() + pd.Timedelta(days=RENEWED_AFTER_DAYS))
    )
    return int((improved | renewed).sum()), len(part)


def _saves(detractor_responses) -> tuple[int, int]:
    """(saved, detractor accounts): an account with a detractor answer in the period is
    saved when its latest answer came after that one and scored higher than its lowest
    detractor score in the period, or when it did not churn and its renewal date lies a year
    or more past its first detractor answer (a new term was signed). One grouped query;
    on PostgreSQL the two counts come back from the database, not row by row."""
    grouped = (
        detractor_responses.filter(account__isnull=False)
        .values("account_id")
        .annotate(first_at=Min("submitted_at"), worst=Min("score"))
    )
    if connection.vendor == "postgresql":
        sql, params = (
            grouped.values("account_id", "first_at", "worst").order_by().query.sql_with_params()
        )
        accounts_table = Account._meta.db_table
        query = f"""
            SELECT COUNT(*) FILTER (WHERE
                (a.last_score_at IS NOT NULL AND a.last_score_at > d.first_at
                 AND COALESCE(a.last_score, 0) > d.worst)
                OR (a.churned_at IS NULL AND a.renewal_date IS NOT NULL
                    AND a.renewal_date >= (d.first_at AT TIME ZONE %s)::date + %s)),
                COUNT(*)
            FROM ({sql}) d JOIN {accounts_table} a ON a.id = d.account_id
        """  # noqa: S608 - compiled ORM SQL and table names from _meta
        with connection.cursor() as cursor:
            cursor.execute(
                query, (timezone.get_current_timezone_name(), RENEWED_AFTER_DAYS, *params)
            )
            saved, total = cursor.fetchone()
        return int(saved), int(total)
    rows = grouped.values_list(
        "first_at",
        "worst",
        "account__last_score",
        "account__last_score_at",
        "account__renewal_date",
        "account__churned_at",
    ).order_by()
    saved = total = 0
    for first_at, worst, last_score, last_at, renewal_date, churned_at in rows:
        total += 1
        saved += _saved(first_at, worst, last_score, last_at, renewal_date, churned_at)
    return saved, total


# --- Themes --------------------------------------------------------------------------------


def _theme_rows(organization, filters, *, raw: bool):
    """Mentions per theme and period (k, detractors, promoters): from ThemeDay unless the
    filters need the accounts (or `raw`), else from the themes of the period's answers."""
    if raw or filters.needs_raw:
        return (
            ResponseTheme.objects.filter(organization=organization)
            .filter(_response_filters(organization, filters, prefix="response__"))
            .annotate(
                bucket=Trunc("response__submitted_at", filters.period, output_field=DateField())
            )
            .values("theme", "bucket")
            .annotate(
                k=Count("id"),
                detractors=Count("id", filter=Q(response__score__lte=6)),
                promoters=Count("id", filter=Q(response__score__gte=9)),
            )
            .order_by()
        )
    rows = ThemeDay.objects.filter(
        organization=organization, day__gte=filters.since, day__lte=filters.until
    )
    if filters.survey_id is not None:
        rows = rows.filter(survey_id=filters.survey_id)
    if filters.channel is not None:
        rows = rows.filter(channel=filters.channel)
    return (
        rows.annotate(bucket=_period_start(filters.period))
        .values("theme", "bucket")
        .annotate(k=Sum("mentions"), detractors=Sum("detractors"), promoters=Sum("promoters"))
        .order_by()
    )


def themes(organization, filters, *, raw: bool = False) -> list:
    """The most mentioned themes with detractor and promoter counts and a per-period trend,
    from one grouped query (theme × period), totalled here."""
    rows = _theme_rows(organization, filters, raw=raw)
    totals: dict[str, list[int]] = {}
    buckets: dict[tuple[str, date], int] = {}
    for row in rows:
        entry = totals.setdefault(row["theme"], [0, 0, 0])
        entry[0] += row["k"]
        entry[1] += row["detractors"]
        entry[2] += row["promoters"]
        buckets[(row["theme"], _as_date(row["bucket"]))] = row["k"]
    if not totals:
        return []
    top = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_THEMES]
    names = taxonomy_for(organization).names()
    starts = [start for start, _, _ in m.periods(filters)]
    return [
        m.ThemeRow(
            theme=theme,
            label=names.get(theme, theme.replace("-", " ").capitalize()),
            detractors=detractors,
            promoters=promoters,
            total=total,
            trend=[buckets.get((theme, start), 0) for start in starts],
        )
        for theme, (total, detractors, promoters) in top
    ]


# --- Churn ---------------------------------------------------------------------------------


def churn(organization, filters):
    """Churn within six months of each account's latest answer in the period, by its
    account-level category; says plainly whether detractors churn more than promoters."""
    frame = account_scores(organization, filters)
    rows = []
    rates_by = {}
    window = pd.Timedelta(days=m.CHURN_WINDOW_DAYS)
    # Churned within the window after the latest answer (no churn date: not churned).
    churned_in_window = (
        frame["churned_at"].notna()
        & (frame["last_at"] <= frame["churned_at"])
        & (frame["churned_at"] <= frame["last_at"] + window)
    )
    for category in ("promoter", "passive", "detractor"):
        in_category = frame["category"] == category
        churned = int((churned_in_window & in_category).sum())
        accounts = int(in_category.sum())
        rate = churned / accounts if accounts else None
        rates_by[category] = (accounts, churned)
        rows.append(m.ChurnRow(category=category, accounts=accounts, churned=churned, rate=rate))
    (n_d, c_d), (n_p, c_p) = rates_by["detractor"], rates_by["promoter"]
    if n_d < CHURN_MIN_ACCOUNTS or n_p < CHURN_MIN_ACCOUNTS:
        return m.Churn(
            rows=rows,
            predictive=None,
            message=(
                "Too few accounts to tell whether the score predicts churn: it takes at least "
                f"{CHURN_MIN_ACCOUNTS} detractor and {CHURN_MIN_ACCOUNTS} promoter accounts "
                f"(there are {n_d} and {n_p})."
            ),
        )
    r_d, r_p = c_d / n_d, c_p / n_p
    pooled = (c_d + c_p) / (n_d + n_p)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_d + 1 / n_p)) if 0 < pooled < 1 else 0.0
    predictive = se > 0 and (r_d - r_p) / se > 1.645
    if predictive:
        message = (
            f"The score predicts churn here: {r_d:.0%} of detractor accounts churned within "
            f"six months, against {r_p:.0%} of promoter accounts."
        )
    else:
        message = (
            f"The score does not predict churn for this base: detractor accounts churned at "
            f"{r_d:.0%} within six months and promoter accounts at {r_p:.0%}, no significant "
            "difference."
        )
    return m.Churn(rows=rows, predictive=bool(predictive), message=message)


def max_date(organization):
    """The latest answer's date, for empty states."""
    value = Response.objects.filter(organization=organization).aggregate(v=Max("submitted_at"))
    return value["v"]

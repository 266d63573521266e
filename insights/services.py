"""Rollup maintenance: DailyScore, ThemeDay and AccountMonth follow the responses exactly.

Every change recomputes whole days (DailyScore, ThemeDay) or whole account-months
(AccountMonth) from the responses (delete the rows, insert the aggregate in one INSERT …
SELECT), so the rollups can never drift by double counting. RolledResponse mirrors each
response (day, account, respondent, score, time) and links it to its respondent's next
answer; a change recomputes the links of the respondents it touches. LoopFollowUp mirrors
each follow-up with its answer's time and score, rewritten for the follow-ups (or answers)
that changed; LoopDay counts those rows per day, recounted for the days they touch.
InvitationDay counts the delivered and answered invitations per day they were sent,
recounted for the days of the invitations that changed or went.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    Count,
    DateField,
    DateTimeField,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    Min,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import Window
from django.db.models.functions import Coalesce, Lead, Trunc, TruncDate
from django.utils import timezone

from followups.models import OPEN_STATUSES, FollowUp
from insights.models import (
    CONTACTED_IN_TIME,
    INVITATION_ANSWERED,
    NO_SURVEY,
    SPAN_MONTHS,
    UNDELIVERED_STATES,
    AccountMonth,
    AccountSpan,
    DailyScore,
    InvitationDay,
    LoopDay,
    LoopFollowUp,
    RolledResponse,
    ThemeDay,
    month_index,
    month_of_index,
    span_start,
)
from nps_platform.sql import pg_array
from responses.models import Response, ResponseTheme
from surveys.models import Invitation

DAY_BATCH = 200


def _day_expression():
    return TruncDate("submitted_at", tzinfo=timezone.get_current_timezone())


def _insert_select(table: str, columns: list[str], queryset) -> None:
    """INSERT INTO table (columns) SELECT … of a values() queryset, in the database."""
    sql, params = queryset.query.sql_with_params()
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {connection.ops.quote_name(table)} ({quoted}) {sql}", params)


def _aggregate(organization_id: int, responses):
    """The rollup rows of some responses, as a values() queryset in DailyScore's columns."""
    return (
        responses.annotate(
            r_org=Value(organization_id, output_field=IntegerField()),
            r_day=_day_expression(),
            r_survey=Coalesce("survey_id", Value(NO_SURVEY)),
        )
        .values("r_org", "r_day", "r_survey", "channel", "score")
        .annotate(r_n=Count("id"), r_c=Count("id", filter=Q(has_comment=True)))
        .order_by()
    )


ROLLUP_COLUMNS = [
    "organization_id",
    "day",
    "survey_id",
    "channel",
    "score",
    "responses",
    "with_comment",
]


def _day_range(day: date):
    start = timezone.make_aware(timezone.datetime.combine(day, timezone.datetime.min.time()))
    end = start + timezone.timedelta(days=1)
    return start, end


def _days_window(days: list[date], *, prefix: str = "", field: str = "submitted_at") -> Q:
    """The responses (through `prefix`) submitted on these local days (or the rows whose
    `field` falls on them): one range per run of consecutive days, so a batch of history
    spread over a year is a few ranges, not one per day."""
    window = Q()
    for first, last in _runs(days):
        low, high = _day_range(first)[0], _day_range(last)[1]
        window |= Q(**{f"{prefix}{field}__gte": low, f"{prefix}{field}__lt": high})
    return window


def _runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """(first, last) of each run of consecutive days, in order."""
    runs: list[list[date]] = []
    for day in sorted(set(days)):
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(first, last) for first, last in runs]


def _lock(organization_id: int) -> None:
    """Serialises rollup writers of one organization (PostgreSQL; SQLite has one writer)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7001, organization_id])


def rollup_days(organization_id: int, days: Iterable[date]) -> None:
    """Recomputes the rollup of these days from the responses."""
    days = sorted(set(days))
    for start in range(0, len(days), DAY_BATCH):
        batch = days[start : start + DAY_BATCH]
        window = _days_window(batch)
        with transaction.atomic():
            _lock(organization_id)
            DailyScore.objects.filter(organization_id=organization_id, day__in=batch).delete()
            responses = Response.objects.filter(window, organization_id=organization_id)
            _insert_select(
                DailyScore._meta.db_table, ROLLUP_COLUMNS, _aggregate(organization_id, responses)
            )
            _recount_theme_days(organization_id, batch)


def _theme_aggregate(organization_id: int, mentions):
    """The ThemeDay rows of some ResponseTheme rows, as a values() queryset in
    THEME_COLUMNS order."""
    return (
        mentions.annotate(
            r_org=Value(organization_id, output_field=IntegerField()),
            r_day=TruncDate("response__submitted_at", tzinfo=timezone.get_current_timezone()),
            r_survey=Coalesce("response__survey_id", Value(NO_SURVEY)),
            r_channel=F("response__channel"),
        )
        .values("r_org", "r_day", "r_survey", "r_channel", "theme")
        .annotate(
            r_n=Count("id"),
            r_d=Count("id", filter=Q(response__score__lte=6)),
            r_p=Count("id", filter=Q(response__score__gte=9)),
        )
        .order_by()
    )


THEME_COLUMNS = [
    "organization_id", "day", "survey_id", "channel", "theme", "mentions", "detractors",
    "promoters",
]  # fmt: skip


def _recount_theme_days(organization_id: int, days: list[date]) -> None:
    """Recomputes ThemeDay for these days from the themes of their responses."""
    ThemeDay.objects.filter(organization_id=organization_id, day__in=days).delete()
    mentions = ResponseTheme.objects.filter(
        _days_window(days, prefix="response__"), organization_id=organization_id
    )
    _insert_select(
        ThemeDay._meta.db_table, THEME_COLUMNS, _theme_aggregate(organization_id, mentions)
    )


def rollup_themes(organization_id: int, response_ids: Iterable[int]) -> None:
    """Brings ThemeDay up to date after an analysis (re)wrote these responses' themes:
    recounts the days they fall on. (A response deleted or moved meanwhile is recounted
    through rollup_responses.)"""
    ids = sorted(set(response_ids))
    days: set[date] = set()
    for start in range(0, len(ids), 1000):
        days.update(
            Response.objects.filter(
                organization_id=organization_id, pk__in=ids[start : start + 1000]
            )
            .annotate(r_day=_day_expression())
            .values_list("r_day", flat=True)
            .distinct()
        )
    days_sorted = sorted(days)
    for start in range(0, len(days_sorted), DAY_BATCH):
        batch = days_sorted[start : start + DAY_BATCH]
        with transaction.atomic():
            _lock(organization_id)
            _recount_theme_days(organization_id, batch)


LOOP_COLUMNS = [
    "followup_id", "organization_id", "response_id", "submitted_at", "survey_id", "channel",
    "score", "status", "outcome", "due_at", "created_at", "first_contact_at", "closed_at",
    "in_sla", "contact_seconds", "close_seconds",
]  # fmt: skip


class _SecondsBetween(Func):
    """Seconds from one time to a later one (None when either is): on PostgreSQL exactly
    what loop health's medians sort, EXTRACT(EPOCH FROM later - earlier) as a double."""

    output_field = FloatField()

    def __init__(self, later: str, earlier: str):
        super().__init__(F(later), F(earlier))

    def as_sql(self, compiler, connection, **extra):
        later, later_params = compiler.compile(self.source_expressions[0])
        earlier, earlier_params = compiler.compile(self.source_expressions[1])
        if connection.vendor == "postgresql":
            sql = f"EXTRACT(EPOCH FROM ({later} - {earlier}))::double precision"
        else:
            sql = f"((julianday({later}) - julianday({earlier})) * 86400.0)"
        return sql, [*later_params, *earlier_params]


def _loop_rows(organization_id: int, followups):
    """LoopFollowUp rows of some follow-ups, as a values() queryset in LOOP_COLUMNS order."""
    return (
        followups.annotate(
            r_org=Value(organization_id, output_field=IntegerField()),
            r_submitted=F("response__submitted_at"),
            r_survey=Coalesce("response__survey_id", Value(NO_SURVEY)),
            r_channel=F("response__channel"),
            r_score=F("response__score"),
            r_in_sla=Case(
                When(CONTACTED_IN_TIME, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
            r_contact=_SecondsBetween("first_contact_at", "created_at"),
            r_close=_SecondsBetween("closed_at", "created_at"),
        )
        .values(
            "id",
            "r_org",
            "response_id",
            "r_submitted",
            "r_survey",
            "r_channel",
            "r_score",
            "status",
            "outcome",
            "due_at",
            "created_at",
            "first_contact_at",
            "closed_at",
            "r_in_sla",
            "r_contact",
            "r_close",
        )  # fmt: skip
        .order_by()
    )


def rollup_followups(
    organization_id: int, *, followup_ids: Iterable[int] = (), response_ids: Iterable[int] = ()
) -> None:
    """Rewrites the LoopFollowUp rows of these follow-ups, and of the follow-ups of these
    responses, from the follow-ups and their answers (a row goes when its follow-up did)."""
    followup_ids, response_ids = sorted(set(followup_ids)), sorted(set(response_ids))
    for field, ids, source in (
        ("followup_id", followup_ids, "pk"),
        ("response_id", response_ids, "response_id"),
    ):
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            with transaction.atomic():
                _lock(organization_id)
                rows = LoopFollowUp.objects.filter(
                    organization_id=organization_id, **{f"{field}__in": chunk}
                )
                days = _loop_days(rows)
                rows.delete()
                followups = FollowUp.objects.filter(
                    organization_id=organization_id, **{f"{source}__in": chunk}
                )
                _insert_select(
                    LoopFollowUp._meta.db_table,
                    LOOP_COLUMNS,
                    _loop_rows(organization_id, followups),
                )
                _recount_loop_days(organization_id, days | _loop_days(rows))


def _loop_days(rows) -> set[date]:
    """The local days of these LoopFollowUp rows' answers."""
    return set(rows.annotate(r_day=_day_expression()).values_list("r_day", flat=True).distinct())


def _loop_day_rows(organization_id: int, rows):
    """LoopDay rows of some LoopFollowUp rows (their detractors'), as a values() queryset
    in LOOP_DAY_COLUMNS order."""
    return (
        rows.filter(score__lte=6)
        .annotate(
            r_org=Value(organization_id, output_field=IntegerField()), r_day=_day_expression()
        )
        .values("r_org", "r_day", "survey_id", "channel", "outcome")
        .annotate(
            r_n=Count("pk"),
            r_in_sla=Count("pk", filter=Q(in_sla=True)),
            r_open=Count("pk", filter=Q(status__in=OPEN_STATUSES)),
        )
        .order_by()
    )


LOOP_DAY_COLUMNS = [
    "organization_id", "day", "survey_id", "channel", "outcome", "followups", "in_sla", "open",
]  # fmt: skip


def _recount_loop_days(organization_id: int, days: set[date]) -> None:
    """Recomputes LoopDay for these days from LoopFollowUp."""
    days_sorted = sorted(days)
    for start in range(0, len(days_sorted), DAY_BATCH):
        batch = days_sorted[start : start + DAY_BATCH]
        LoopDay.objects.filter(organization_id=organization_id, day__in=batch).delete()
        rows = LoopFollowUp.objects.filter(_days_window(batch), organization_id=organization_id)
        _insert_select(
            LoopDay._meta.db_table, LOOP_DAY_COLUMNS, _loop_day_rows(organization_id, rows)
        )


INVITATION_DAY_COLUMNS = [
    "organization_id", "day", "survey_id", "channel", "delivered", "answered",
]  # fmt: skip


def _invitation_day_rows(organization_id: int, invitations):
    """InvitationDay rows of some invitations (those delivered), as a values() queryset in
    INVITATION_DAY_COLUMNS order."""
    return (
        invitations.filter(sent_at__isnull=False)
        .exclude(state__in=UNDELIVERED_STATES)
        .annotate(
            r_org=Value(organization_id, output_field=IntegerField()),
            r_day=TruncDate("sent_at", tzinfo=timezone.get_current_timezone()),
        )
        .values("r_org", "r_day", "survey_id", "channel")
        .annotate(r_n=Count("pk"), r_answered=Count("pk", filter=INVITATION_ANSWERED))
        .order_by()
    )


def _recount_invitation_days(organization_id: int, days: list[date]) -> None:
    """Recomputes InvitationDay for these days from the invitations sent on them."""
    InvitationDay.objects.filter(organization_id=organization_id, day__in=days).delete()
    invitations = Invitation.objects.filter(
        _days_window(days, field="sent_at"), organization_id=organization_id
    )
    _insert_select(
        InvitationDay._meta.db_table,
        INVITATION_DAY_COLUMNS,
        _invitation_day_rows(organization_id, invitations),
    )


def rollup_invitations(
    organization_id: int, *, invitation_ids: Iterable[int] = (), days: Iterable[date] = ()
) -> None:
    """Brings InvitationDay up to date after these invitations changed (sent, delivered or
    lost, answered): recounts the days they were sent on, and these days (those of deleted
    invitations). An invitation's sent_at is set once, when it goes out, so the day an
    invitation is counted on never moves."""
    ids = sorted(set(invitation_ids))
    touched = set(days)
    for start in range(0, len(ids), 1000):
        touched.update(
            Invitation.objects.filter(
                organization_id=organization_id,
                pk__in=ids[start : start + 1000],
                sent_at__isnull=False,
            )
            .annotate(r_day=TruncDate("sent_at", tzinfo=timezone.get_current_timezone()))
            .values_list("r_day", flat=True)
            .distinct()
        )
    days_sorted = sorted(touched)
    for start in range(0, len(days_sorted), DAY_BATCH):
        with transaction.atomic():
            _lock(organization_id)
            _recount_invitation_days(organization_id, days_sorted[start : start + DAY_BATCH])


def _respondent_expression():
    return Coalesce("contact_id", F("id") * Value(-1), output_field=BigIntegerField())


FACT_COLUMNS = [
    "response_id",
    "organization_id",
    "day",
    "account_id",
    "respondent_id",
    "score",
    "submitted_at",
    "next_at",
]


def _facts(organization_id: int, responses, *, linked: bool):
    """RolledResponse rows of some responses, as a values() queryset in FACT_COLUMNS order.
    `linked`: the responses are every answer with an account of their respondents, so
    next_at comes from the window; otherwise it is left empty (answers without account)."""
    rows = responses.annotate(
        r_org=Value(organization_id, output_field=IntegerField()),
        r_day=_day_expression(),
        r_respondent=_respondent_expression(),
    )
    if linked:
        rows = rows.annotate(
            r_next=Window(
                Lead("submitted_at"),
                partition_by=[_respondent_expression()],
                order_by=[F("submitted_at").asc(), F("id").asc()],
            )
        )
    else:
        rows = rows.annotate(r_next=Value(None, output_field=DateTimeField()))
    return rows.values(
        "id", "r_org", "r_day", "account_id", "r_respondent", "score", "submitted_at", "r_next"
    ).order_by()


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


ACCOUNT_MONTH_COLUMNS = [
    "organization_id",
    "account_id",
    "month",
    "promoters",
    "passives",
    "detractors",
    "last_at",
    "first_detractor_at",
    "lowest_score",
    "latest_score_sum",
    "latest_respondents",
]


def _account_months(organization_id: int, facts):
    """AccountMonth rows of some RolledResponse rows (with an account), as a values()
    queryset in ACCOUNT_MONTH_COLUMNS order."""
    latest = Q(next_at__isnull=True)
    return (
        facts.filter(account_id__isnull=False)
        .annotate(
            r_org=Value(organization_id, output_field=IntegerField()),
            r_month=Trunc("day", "month", output_field=DateField()),
        )
        .values("r_org", "account_id", "r_month")
        .annotate(
            r_p=Count("pk", filter=Q(score__gte=9)),
            r_pa=Count("pk", filter=Q(score__gte=7, score__lte=8)),
            r_d=Count("pk", filter=Q(score__lte=6)),
            r_last=Max("submitted_at"),
            r_first_detractor=Min("submitted_at", filter=Q(score__lte=6)),
            r_lowest=Min("score"),
            r_sum=Coalesce(Sum(Case(When(latest, then="score"), default=Value(0))), Value(0)),
            r_n=Count("pk", filter=latest),
        )
        .order_by()
    )


def _latest_cells(organization_id: int, respondents) -> set[tuple[int, date]]:
    """(account, month) of the respondents' latest answers."""
    rows = RolledResponse.objects.filter(
        organization_id=organization_id,
        respondent_id__in=respondents,
        account_id__isnull=False,
        next_at__isnull=True,
    ).values_list("account_id", "day")
    return {(account, _month_start(day)) for account, day in rows}


def _link(organization_id: int, respondents) -> None:
    """Recomputes next_at along each of these respondents' answers with an account."""
    rows = (
        RolledResponse.objects.filter(
            organization_id=organization_id,
            respondent_id__in=respondents,
            account_id__isnull=False,
        )
        .order_by("respondent_id", "-submitted_at", "-response_id")
        .values_list("response_id", "respondent_id", "submitted_at", "next_at")
    )
    changed = []
    following: tuple[int, object] | None = None  # (respondent, its later answer's time)
    for response_id, respondent, submitted_at, next_at in rows:
        expected = following[1] if following and following[0] == respondent else None
        if next_at != expected:
            changed.append(RolledResponse(response_id=response_id, next_at=expected))
        following = (respondent, submitted_at)
    if connection.vendor != "postgresql":
        RolledResponse.objects.bulk_update(changed, ["next_at"], batch_size=500)
        return
    if not changed:
        return
    # One UPDATE … FROM unnest(…) for the lot: bulk_update's CASE per row cost more than the
    # rest of the rollup (about 0.8 s of CPU for 1,000 answers).
    table = connection.ops.quote_name(RolledResponse._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} r SET next_at = v.next_at "  # noqa: S608 (the name from _meta)
            "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(response_id, next_at) "
            "WHERE r.response_id = v.response_id AND r.organization_id = %s",
            [
                pg_array([row.response_id for row in changed]),
                pg_array([row.next_at for row in changed]),
                organization_id,
            ],
        )


def _recount_account_months(organization_id: int, cells: set[tuple[int, date]]) -> None:
    """Recomputes these (account, month) rows of AccountMonth from RolledResponse."""
    by_month: dict[date, set[int]] = defaultdict(set)
    for account, month in cells:
        if account is not None:
            by_month[month].add(account)
    for month, accounts in sorted(by_month.items()):
        accounts = sorted(accounts)
        AccountMonth.objects.filter(
            organization_id=organization_id, month=month, account_id__in=accounts
        ).delete()
        facts = RolledResponse.objects.filter(
            organization_id=organization_id,
            account_id__in=accounts,
            day__gte=month,
            day__lt=_next_month(month),
        )
        _insert_select(
            AccountMonth._meta.db_table,
            ACCOUNT_MONTH_COLUMNS,
            _account_months(organization_id, facts),
        )


SPAN_COLUMNS = ["organization_id", "account_id", "month", "months", *ACCOUNT_MONTH_COLUMNS[3:]]


def _span_rows(organization_id: int, start: date, months: int, accounts=None):
    """AccountSpan rows of the block of `months` months from `start`, summed from its two
    halves (AccountMonth's rows, or the spans half as long), as a values() queryset in
    SPAN_COLUMNS order; of these accounts only, when given."""
    half = months // 2
    source = AccountMonth.objects.all() if half == 1 else AccountSpan.objects.filter(months=half)
    rows = source.filter(
        organization_id=organization_id,
        month__gte=start,
        month__lt=month_of_index(month_index(start) + months),
    )
    if accounts is not None:
        rows = rows.filter(account_id__in=accounts)
    return (
        rows.annotate(
            r_org=Value(organization_id, output_field=IntegerField()),
            r_month=Value(start, output_field=DateField()),
            r_months=Value(months, output_field=IntegerField()),
        )
        .values("r_org", "account_id", "r_month", "r_months")
        .annotate(
            r_p=Sum("promoters"),
            r_pa=Sum("passives"),
            r_d=Sum("detractors"),
            r_last=Max("last_at"),
            r_first_detractor=Min("first_detractor_at"),
            r_lowest=Min("lowest_score"),
            r_sum=Sum("latest_score_sum"),
            r_n=Sum("latest_respondents"),
        )
        .order_by()
    )


def _recount_account_spans(organization_id: int, cells: set[tuple[int, date]]) -> None:
    """Recomputes the AccountSpan blocks holding these (account, month) cells, shortest
    first (each is summed from the blocks half as long)."""
    cells = {(account, month) for account, month in cells if account is not None}
    for months in SPAN_MONTHS:
        by_start: dict[date, set[int]] = defaultdict(set)
        for account, month in cells:
            by_start[span_start(month, months)].add(account)
        for start, accounts in sorted(by_start.items()):
            accounts = sorted(accounts)
            AccountSpan.objects.filter(
                organization_id=organization_id, months=months, month=start, account_id__in=accounts
            ).delete()
            _insert_select(
                AccountSpan._meta.db_table,
                SPAN_COLUMNS,
                _span_rows(organization_id, start, months, accounts),
            )


def _rebuild_account_spans(organization_id: int) -> None:
    """Rebuilds AccountSpan from AccountMonth, block by block, shortest first."""
    AccountSpan.objects.filter(organization_id=organization_id).delete()
    bounds = AccountMonth.objects.filter(organization_id=organization_id).aggregate(
        first=Min("month"), last=Max("month")
    )
    if bounds["first"] is None:
        return
    for months in SPAN_MONTHS:
        start = span_start(bounds["first"], months)
        while start <= bounds["last"]:
            _insert_select(
                AccountSpan._meta.db_table, SPAN_COLUMNS, _span_rows(organization_id, start, months)
            )
            start = month_of_index(month_index(start) + months)


def rollup_responses(organization_id: int, response_ids: Iterable[int]) -> None:
    """Brings the rollups up to date after these responses were recorded, edited or
    deleted: recomputes the day each was counted on before and the day it falls on now,
    the links of the respondents they belong (or belonged) to, and every account-month
    those touch."""
    ids = sorted(set(response_ids))
    if not ids:
        return
    old = {
        row[0]: row[1:]
        for row in RolledResponse.objects.filter(
            organization_id=organization_id, pk__in=ids
        ).values_list("response_id", "day", "account_id", "respondent_id")
    }
    current = {
        row[0]: row
        for row in Response.objects.filter(organization_id=organization_id, pk__in=ids)
        .annotate(r_day=_day_expression(), r_respondent=_respondent_expression())
        .values_list("id", "r_day", "account_id", "r_respondent", "score", "submitted_at")
    }
    rollup_days(
        organization_id, {row[0] for row in old.values()} | {r[1] for r in current.values()}
    )
    respondents = {row[2] for row in old.values()} | {row[3] for row in current.values()}
    cells = {(row[1], _month_start(row[0])) for row in old.values()}
    cells |= {(row[2], _month_start(row[1])) for row in current.values()}
    with transaction.atomic():
        _lock(organization_id)
        cells |= _latest_cells(organization_id, respondents)
        RolledResponse.objects.filter(
            organization_id=organization_id, pk__in=[i for i in old if i not in current]
        ).delete()
        RolledResponse.objects.bulk_create(
            [
                RolledResponse(
                    response_id=i,
                    organization_id=organization_id,
                    day=day,
                    account_id=account,
                    respondent_id=respondent,
                    score=score,
                    submitted_at=submitted_at,
                    next_at=None,
                )
                for i, day, account, respondent, score, submitted_at in current.values()
            ],
            update_conflicts=True,
            unique_fields=["response_id"],
            update_fields=[
                "organization", "day", "account_id", "respondent_id", "score",
                "submitted_at", "next_at",
            ],
        )  # fmt: skip
        _link(organization_id, respondents)
        cells |= _latest_cells(organization_id, respondents)
        _recount_account_months(organization_id, cells)
        _recount_account_spans(organization_id, cells)
    # A follow-up reads its answer's time and score: rewrite those of these answers (and
    # drop those that went with a deleted answer).
    rollup_followups(organization_id, response_ids=ids)


def responses_counted_for(
    organization_id: int, *, contacts: Iterable[int] = (), accounts: Iterable[int] = ()
) -> list[int]:
    """The responses counted for these contacts or accounts (to recount them once those
    are gone and the answers no longer point at them)."""
    found: set[int] = set()
    for field, ids in (("respondent_id", sorted(contacts)), ("account_id", sorted(accounts))):
        for start in range(0, len(ids), 1000):
            found.update(
                RolledResponse.objects.filter(
                    organization_id=organization_id, **{f"{field}__in": ids[start : start + 1000]}
                ).values_list("response_id", flat=True)
            )
    return sorted(found)


def rollup_rebuild(organization_id: int) -> int:
    """Rebuilds the organization's rollups from scratch, exactly. Returns the DailyScore
    rows written."""
    with transaction.atomic():
        _lock(organization_id)
        DailyScore.objects.filter(organization_id=organization_id).delete()
        RolledResponse.objects.filter(organization_id=organization_id).delete()
        AccountMonth.objects.filter(organization_id=organization_id).delete()
        responses = Response.objects.filter(organization_id=organization_id)
        _insert_select(
            DailyScore._meta.db_table, ROLLUP_COLUMNS, _aggregate(organization_id, responses)
        )
        _insert_select(
            RolledResponse._meta.db_table,
            FACT_COLUMNS,
            _facts(organization_id, responses.filter(account__isnull=False), linked=True),
        )
        _insert_select(
            RolledResponse._meta.db_table,
            FACT_COLUMNS,
            _facts(organization_id, responses.filter(account__isnull=True), linked=False),
        )
        _insert_select(
            AccountMonth._meta.db_table,
            ACCOUNT_MONTH_COLUMNS,
            _account_months(
                organization_id, RolledResponse.objects.filter(organization_id=organization_id)
            ),
        )
        _rebuild_account_spans(organization_id)
        rollup_rebuild_themes_and_loop(organization_id)
        rollup_rebuild_invitations(organization_id)
    return DailyScore.objects.filter(organization_id=organization_id).count()


def rollup_rebuild_themes_and_loop(organization_id: int) -> None:
    """Rebuilds ThemeDay, LoopFollowUp and LoopDay from scratch, exactly."""
    with transaction.atomic():
        _lock(organization_id)
        ThemeDay.objects.filter(organization_id=organization_id).delete()
        LoopFollowUp.objects.filter(organization_id=organization_id).delete()
        LoopDay.objects.filter(organization_id=organization_id).delete()
        _insert_select(
            ThemeDay._meta.db_table,
            THEME_COLUMNS,
            _theme_aggregate(
                organization_id, ResponseTheme.objects.filter(organization_id=organization_id)
            ),
        )
        _insert_select(
            LoopFollowUp._meta.db_table,
            LOOP_COLUMNS,
            _loop_rows(organization_id, FollowUp.objects.filter(organization_id=organization_id)),
        )
        _insert_select(
            LoopDay._meta.db_table,
            LOOP_DAY_COLUMNS,
            _loop_day_rows(
                organization_id, LoopFollowUp.objects.filter(organization_id=organization_id)
            ),
        )


def rollup_rebuild_invitations(organization_id: int) -> None:
    """Rebuilds InvitationDay from scratch, exactly."""
    with transaction.atomic():
        _lock(organization_id)
        InvitationDay.objects.filter(organization_id=organization_id).delete()
        _insert_select(
            InvitationDay._meta.db_table,
            INVITATION_DAY_COLUMNS,
            _invitation_day_rows(
                organization_id, Invitation.objects.filter(organization_id=organization_id)
            ),
        )

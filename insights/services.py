"""Rollup maintenance: DailyScore and AccountMonth follow the responses exactly.

Every change recomputes whole days (DailyScore) or whole account-months (AccountMonth) from
the responses (delete the rows, insert the aggregate in one INSERT … SELECT), so the
rollups can never drift by double counting. RolledResponse mirrors each response (day,
account, respondent, score, time) and links it to its respondent's next answer; a change
recomputes the links of the respondents it touches.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    DateField,
    DateTimeField,
    F,
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

from insights.models import NO_SURVEY, AccountMonth, DailyScore, RolledResponse
from responses.models import Response

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
        window = Q()
        for day in batch:
            low, high = _day_range(day)
            window |= Q(submitted_at__gte=low, submitted_at__lt=high)
        with transaction.atomic():
            _lock(organization_id)
            DailyScore.objects.filter(organization_id=organization_id, day__in=batch).delete()
            responses = Response.objects.filter(window, organization_id=organization_id)
            _insert_select(
                DailyScore._meta.db_table, ROLLUP_COLUMNS, _aggregate(organization_id, responses)
            )


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
    RolledResponse.objects.bulk_update(changed, ["next_at"], batch_size=500)


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
    return DailyScore.objects.filter(organization_id=organization_id).count()

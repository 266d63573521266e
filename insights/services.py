"""Rollup maintenance: DailyScore follows the responses, day by day, exactly.

Every change recomputes whole days from the responses (delete the day's rows, insert the
day's aggregate in one INSERT … SELECT), so the rollup can never drift by double counting.
"""

from collections.abc import Iterable
from datetime import date

from django.db import connection, transaction
from django.db.models import Count, IntegerField, Q, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from insights.models import NO_SURVEY, DailyScore, RolledResponse
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


def rollup_responses(organization_id: int, response_ids: Iterable[int]) -> None:
    """Brings the rollup up to date after these responses were recorded, edited or
    deleted: recomputes the day each was counted on before and the day it falls on now."""
    ids = sorted(set(response_ids))
    if not ids:
        return
    old = dict(
        RolledResponse.objects.filter(organization_id=organization_id, pk__in=ids).values_list(
            "response_id", "day"
        )
    )
    current = dict(
        Response.objects.filter(organization_id=organization_id, pk__in=ids)
        .annotate(r_day=_day_expression())
        .values_list("id", "r_day")
    )
    rollup_days(organization_id, {*old.values(), *current.values()})
    with transaction.atomic():
        RolledResponse.objects.filter(
            organization_id=organization_id, pk__in=[i for i in old if i not in current]
        ).delete()
        moved = [
            RolledResponse(response_id=i, organization_id=organization_id, day=day)
            for i, day in current.items()
            if old.get(i) != day
        ]
        RolledResponse.objects.bulk_create(
            moved,
            update_conflicts=True,
            unique_fields=["response_id"],
            update_fields=["day", "organization"],
        )


def rollup_rebuild(organization_id: int) -> int:
    """Rebuilds the organization's rollup from scratch, exactly. Returns the rows written."""
    with transaction.atomic():
        _lock(organization_id)
        DailyScore.objects.filter(organization_id=organization_id).delete()
        RolledResponse.objects.filter(organization_id=organization_id).delete()
        responses = Response.objects.filter(organization_id=organization_id)
        _insert_select(
            DailyScore._meta.db_table, ROLLUP_COLUMNS, _aggregate(organization_id, responses)
        )
        _insert_select(
            RolledResponse._meta.db_table,
            ["response_id", "organization_id", "day"],
            responses.annotate(
                r_org=Value(organization_id, output_field=IntegerField()),
                r_day=_day_expression(),
            )
            .values("id", "r_org", "r_day")
            .order_by(),
        )
    return DailyScore.objects.filter(organization_id=organization_id).count()

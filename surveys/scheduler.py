"""The send scheduler: plans invitations on a drip, sends those that are due, reminds once,
and turns touchpoint events into invitations.

- `programme_plan` (the beat tick, per programme) picks today's share of the eligible
  contacts in SQL and inserts their invitations, each at its own slot of the send window in
  the contact's time zone; it records why others were skipped.
- `invitations_dispatch` sends due invitations in batches, each claimed by compare-and-set,
  with a capped retry schedule.
- `reminders_plan` sends the one reminder; `touchpoint_record` plans from an event;
  `invitations_mark_answered` follows recorded responses; `programme_forecast` predicts.

Eligibility itself lives in surveys/eligibility.py, the one rule every path here asks.
Planning runs as a few SQL statements per programme whatever the segment's size: Python
only sees the contacts picked today, in chunks.
"""

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, Exists, F, OuterRef, Q, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate
from django.utils.timezone import now as current_time

from accounts.models import Contact
from nps_platform.models import Organization
from responses.models import Response
from surveys import eligibility, emails, services
from surveys.eligibility import local_date, local_day_start, zone_of
from surveys.events import invitations_changed_on_commit
from surveys.models import (
    Invitation,
    InvitationState,
    Programme,
    SkipReason,
    SurveySettings,
    TouchpointEvent,
)
from surveys.tracking import invitation_mark_answered

log = logging.getLogger(__name__)
S = InvitationState

RETRY_DELAYS = (timedelta(minutes=5), timedelta(minutes=30))  # then it fails
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
STUCK_AFTER = timedelta(minutes=15)  # far beyond CELERY_TASK_TIME_LIMIT
MIN_WINDOW_LEFT = timedelta(hours=1)  # less of today's window left: plan into the next one
# Skipped invitations recorded per programme and planning run: the send log's sample of
# who was left out and why (skip_reasons() answers for anyone, any time).
SKIP_RECORD_LIMIT = 2_000
INSERT_CHUNK = 1_000
POPULATION_TTL = 36 * 3600  # seconds; the key names the day
# (factor, extra) of the candidate prefix an account-capped pick looks at first: n × factor
# + extra eligible contacts; further down when the cap held back too many of them.
ACCOUNT_CAP_PREFIX = (2, 200)
ACCOUNT_CAP_ATTEMPTS = 3
DEFAULT_ANSWER_RATE = 0.3
ANSWER_SETTLE = timedelta(days=7)  # invitations younger than this still get answers
REMINDER_GRACE = timedelta(days=7)  # a reminder missed by more than this is not sent
AWAITING_ANSWER = [S.SENT, S.DELIVERED, S.OPENED]
NOT_SKIPPED = [state for state in S.values if state != S.SKIPPED]


# --- The send window ----------------------------------------------------------------------


def _window_on(programme: Programme, day: date, zone) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(programme.window_start_hour), zone)
    end_hour = programme.window_end_hour
    end = datetime.combine(day + timedelta(days=end_hour // 24), time(end_hour % 24), zone)
    return start, end


def _allowed(programme: Programme, day: date) -> bool:
    return not programme.business_days_only or day.weekday() < 5


def window_for(programme: Programme, zone, at: datetime) -> tuple[datetime, datetime]:
    """The stretch of send window (UTC) a planning run at `at` spreads into, in `zone`: the
    rest of today's window when at least an hour of it is left on an allowed day, else the
    whole window of the next allowed (business) day."""
    local = at.astimezone(zone)
    day = local.date()
    for _ in range(8):
        if _allowed(programme, day):
            start, end = (moment.astimezone(UTC) for moment in _window_on(programme, day, zone))
            start = max(start, at.astimezone(UTC))
            if end - start >= MIN_WINDOW_LEFT:
                return start, end
        day += timedelta(days=1)
    raise AssertionError("a week always has an allowed day")  # pragma: no cover


def next_in_window(programme: Programme, zone, moment: datetime) -> datetime:
    """`moment` if it falls inside the send window in `zone`, else the next window's start."""
    moment = moment.astimezone(UTC)
    day = moment.astimezone(zone).date()
    for _ in range(8):
        if _allowed(programme, day):
            start, end = (m.astimezone(UTC) for m in _window_on(programme, day, zone))
            if moment < start:
                return start
            if moment < end:
                return moment
        day += timedelta(days=1)
    raise AssertionError("a week always has an allowed day")  # pragma: no cover


# --- Raw SQL around querysets ---------------------------------------------------------------


def _sql(queryset) -> tuple[str, tuple]:
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    return sql, tuple(params)


def _db_time(moment: datetime):
    return connection.ops.adapt_datetimefield_value(moment)


_TABLE = Invitation._meta.db_table
_COLUMNS = (
    "organization_id",
    "programme_id",
    "survey_id",
    "contact_id",
    "account_id",
    "channel",
    "state",
    "skip_reason",
    "trigger",
    "planned_for",
    "created_at",
    "attempts",
    "last_error",
    "message_id",
)


def _insert_rows(
    *,
    organization: Organization,
    programme: Programme,
    at: datetime,
    rows: list[tuple],
    state: str = S.PLANNED,
    skip_reason: str = "",
) -> int:
    """Inserts invitations made by the planner at `at`, given (contact_id, account_id,
    planned_for) rows; one still open for the same programme and contact (the partial
    unique constraint) is left alone, so planning twice plans once. Returns the rows
    inserted."""
    if not rows:
        return 0
    qn = connection.ops.quote_name
    head = f"INSERT INTO {qn(_TABLE)} ({', '.join(qn(c) for c in _COLUMNS)}) "
    fixed = (organization.pk, programme.pk, programme.survey_id)
    constants = ("email", str(state), str(skip_reason), "", _db_time(at), 0, "", "")
    if connection.vendor == "postgresql":
        # Three arrays rather than 14 parameters a row: cheap to send and to plan.
        contact_ids, account_ids, moments = (list(column) for column in zip(*rows, strict=True))
        sql = head + (  # noqa: S608 - names and SQL are ours, values are parameters
            "SELECT %s, %s, %s, u.contact_id, u.account_id, %s, %s, %s, %s, u.planned_for,"
            " %s, %s, %s, %s FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[])"
            " AS u(contact_id, account_id, planned_for) ON CONFLICT DO NOTHING"
        )
        params = (*fixed, *constants, contact_ids, account_ids, moments)
    else:
        one = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        sql = head + f"VALUES {', '.join([one] * len(rows))} ON CONFLICT DO NOTHING"
        params = [
            value
            for contact_id, account_id, planned_for in rows
            for value in (
                *fixed,
                contact_id,
                account_id,
                constants[0],
                constants[1],
                constants[2],
                constants[3],
                _db_time(planned_for),
                *constants[4:],
            )
        ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- Planning -------------------------------------------------------------------------------


@dataclass
class PlanReport:
    planned: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    quota: int = 0
    population: int | None = None  # the drip's cycle population; None with a daily cap
    skips_capped: bool = False  # more skips than SKIP_RECORD_LIMIT: the rest wait a tick

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())


def _population_key(organization: Organization, programme: Programme, at: datetime) -> str:
    """Names the day and everything the count depends on but the contacts themselves (a
    change of segment or cadence counts afresh; new contacts count from tomorrow)."""
    day = local_date(organization, at).isoformat()
    segment = programme.segment.updated_at.timestamp() if programme.segment_id else ""
    return (
        f"surveys:population:{organization.pk}:{programme.pk}:"
        f"{programme.created_at.timestamp()}:{programme.segment_id}:{segment}:"
        f"{programme.every_days}:{int(programme.channel_email)}:{programme.min_tenure_days}:{day}"
    )


def daily_quota(
    *, organization: Organization, programme: Programme, at: datetime
) -> tuple[int, int | None]:
    """(today's sends, the cycle population): the daily cap, or the drip, which spreads the
    segment's population evenly over every_days. The population is counted once a day and
    kept in the cache for the day's other ticks (and the forecast)."""
    if programme.daily_cap:
        return programme.daily_cap, None
    population = cache.get(_population_key(organization, programme, at))
    if population is None:
        population = eligibility.cycle_population(
            organization=organization, programme=programme, at=at
        )
        cache.set(_population_key(organization, programme, at), population, POPULATION_TTL)
    return _drip(population, programme), population


def _drip(population: int, programme: Programme) -> int:
    return math.ceil(population / max(1, programme.every_days))


def planned_on_day(organization: Organization, programme: Programme, at: datetime) -> int:
    """Invitations the scheduler (not a trigger) made for the programme on `at`'s day."""
    start = local_day_start(organization, at)
    end = datetime.combine(start.date() + timedelta(days=1), time(), zone_of(organization.timezone))
    return Invitation.objects.filter(
        organization=organization,
        programme=programme,
        state__in=NOT_SKIPPED,
        trigger="",
        # planned_for never precedes created_at: a bound the (programme, state, planned_for)
        # index can use.
        planned_for__gte=start,
        created_at__gte=start,
        created_at__lt=end,
    ).count()


def _order_key(prefix: str = "") -> str:
    """Longest unsurveyed first, never surveyed before all, then by id (portable SQL)."""
    return f"({prefix}c_seen IS NOT NULL), {prefix}c_seen, {prefix}c_id"


def _pick_sql(
    *,
    organization: Organization,
    programme: Programme,
    at: datetime,
    fatigue_days: int,
    wanted: int,
    prefix: tuple[int, int],
) -> tuple[str, tuple]:
    """One statement picking `wanted` eligible contacts, longest unsurveyed first (never
    surveyed before all): the rule (eligibility.exclusions) folded into two conditions,
    standing and passing, with one hash probe over invitations a contact. In
    (last_surveyed_at NULLS FIRST, id) order, which an index on contacts (organization,
    last_surveyed_at NULLS FIRST, id) serves without reading the whole segment.

    With an account cap, the window runs over the first `wanted × prefix[0] + prefix[1]`
    eligible contacts (a prefix holds every contact that ranks before any of its rows, so
    each row's place in its account is exact): ROW_NUMBER() OVER (PARTITION BY account)
    keeps those within the places their account has left (the cap less contacts surveyed
    within the window or planned). A capped account has no places left.

    Rows: (kind, candidates, c_id, c_account, c_tz, i, n): a row per picked contact, the
    i-th of n (kind 1); with a cap, one row counting the candidates (kind 0) and a row per
    contact the cap held back (kind 2)."""
    rules = eligibility.exclusions(
        organization=organization, programme=programme, at=at, fatigue_days=fatigue_days
    )
    standing = [rule for rule in rules if rule.reason in eligibility.STANDING]
    passing = [
        rule
        for rule in rules
        if rule.reason not in eligibility.STANDING and rule.reason != SkipReason.ACCOUNT_CAP
    ]
    eligible = (
        eligibility.in_segment(organization, programme)
        # Plain conditions rather than a CASE: the planner can estimate what remains.
        .exclude(eligibility.any_of(organization, standing))
        .exclude(eligibility.any_of(organization, passing))
        .order_by(F("last_surveyed_at").asc(nulls_first=True), "id")
        .values(
            c_id=F("id"),
            c_account=F("account_id"),
            c_tz=F("timezone"),
            c_seen=F("last_surveyed_at"),
        )
    )
    key = _order_key()
    numbered = (
        "SELECT 1, NULL, c_id, c_account, c_tz,"  # noqa: S608 - names and SQL are ours
        f" ROW_NUMBER() OVER (ORDER BY {key}), COUNT(*) OVER () FROM picked"
    )
    if not programme.account_cap:
        picked_sql, params = _sql(eligible[:wanted])
        return f"WITH picked AS ({picked_sql}) {numbered}", params
    cand_sql, params = _sql(eligible[: wanted * prefix[0] + prefix[1]])
    usage = (
        Contact.objects.filter(
            organization=organization,
            # Only the candidates' accounts (the cand CTE below), by the index.
            account_id__in=RawSQL("SELECT c_account FROM cand", ()),
        )
        .filter(eligibility.account_usage(organization, programme, at))
        .order_by()
        .values("account_id")
        .annotate(c_used=Count("id"))
    )
    usage_sql, usage_params = _sql(usage)
    sql = (
        f"WITH cand AS MATERIALIZED ({cand_sql}),"  # noqa: S608 - names and SQL are ours
        f" used AS ({usage_sql}),"
        " w AS MATERIALIZED (SELECT cand.c_id, cand.c_account, cand.c_tz, cand.c_seen,"
        " CASE WHEN cand.c_account IS NULL OR ROW_NUMBER() OVER ("
        f"   PARTITION BY cand.c_account ORDER BY {_order_key('cand.')})"
        "   <= %s - COALESCE(used.c_used, 0) THEN 1 ELSE 0 END AS c_fits"
        " FROM cand LEFT JOIN used ON used.account_id = cand.c_account),"
        " picked AS (SELECT c_id, c_account, c_tz, c_seen FROM w WHERE c_fits = 1"
        f" ORDER BY {key} LIMIT %s) "
        "SELECT 0, (SELECT COUNT(*) FROM cand), NULL, NULL, NULL, NULL, NULL"
        f" UNION ALL {numbered}"
        # Those the cap held back although their turn had come: the account-cap skips.
        " UNION ALL SELECT 2, NULL, c_id, c_account, NULL, NULL, NULL"
        f" FROM (SELECT c_id, c_account FROM w WHERE c_fits = 0 ORDER BY {key} LIMIT %s) d"
    )
    return sql, (*params, *usage_params, programme.account_cap, wanted, SKIP_RECORD_LIMIT)


@dataclass
class _Picked:
    candidates: int | None = None
    planned: int = 0
    capped: list[tuple[int, int]] = field(default_factory=list)  # (contact, account)


def _plan_picked(
    *, organization: Organization, programme: Programme, at: datetime, sql: str, params
) -> _Picked:
    """Runs the pick and inserts an invitation per picked contact, the i-th of n at the
    i-th of n even slots of its send window, in its own time zone (else the
    organization's). Streams the rows in chunks: memory stays flat."""
    windows: dict[str, tuple[datetime, datetime]] = {}
    result = _Picked()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(INSERT_CHUNK):
            rows = []
            for kind, candidates, contact_id, account_id, tz_name, i, n in chunk:
                if kind == 0:
                    result.candidates = candidates
                    continue
                if kind == 2:
                    result.capped.append((contact_id, account_id))
                    continue
                zone = zone_of(tz_name, organization.timezone)
                if zone.key not in windows:
                    windows[zone.key] = window_for(programme, zone, at)
                start, end = windows[zone.key]
                planned_for = start + (end - start) * ((i - 0.5) / n)
                rows.append((contact_id, account_id, planned_for.replace(microsecond=0)))
            result.planned += _insert_rows(
                organization=organization, programme=programme, at=at, rows=rows
            )
    return result


def _record_capped(
    *, organization: Organization, programme: Programme, at: datetime, capped: dict
) -> int:
    """Records the contacts the account cap held back when their turn came, as skipped,
    under the same once-a-day, once-a-cycle rule."""
    day_start = local_day_start(organization, at)
    # Half the budget at most: the other reasons get recorded too.
    chosen = list(capped.items())[: SKIP_RECORD_LIMIT // 2]
    seen = set(
        Invitation.objects.filter(
            organization=organization,
            programme=programme,
            state=S.SKIPPED,
            contact_id__in=[contact_id for contact_id, _ in chosen],
            planned_for__gte=min(day_start, at - timedelta(days=programme.every_days)),
        )
        .filter(Q(planned_for__gte=day_start) | Q(skip_reason=SkipReason.ACCOUNT_CAP))
        .values_list("contact_id", flat=True)
    )
    return _insert_rows(
        organization=organization,
        programme=programme,
        at=at,
        rows=[(contact, account, at) for contact, account in chosen if contact not in seen],
        state=S.SKIPPED,
        skip_reason=SkipReason.ACCOUNT_CAP,
    )


def _record_skips(
    *,
    organization: Organization,
    programme: Programme,
    at: datetime,
    fatigue_days: int,
    capped: dict,
) -> Counter:
    """Records up to SKIP_RECORD_LIMIT skipped invitations with their reason: the account
    cap's from the pick, the others in one INSERT … SELECT that stops once it has enough.
    A contact gets at most one a day, and the same reason once a cycle (every_days), so
    repeated ticks do not pile up rows."""
    counts = Counter()
    if capped:
        counts[SkipReason.ACCOUNT_CAP.value] = _record_capped(
            organization=organization, programme=programme, at=at, capped=capped
        )
    limit = SKIP_RECORD_LIMIT - counts.total()
    if limit <= 0:
        return +counts
    # The account cap is left to the pick, which counts every account's places at once.
    rules = [
        rule
        for rule in eligibility.exclusions(
            organization=organization, programme=programme, at=at, fatigue_days=fatigue_days
        )
        if rule.reason != SkipReason.ACCOUNT_CAP
    ]
    reasons = (
        eligibility.in_segment(organization, programme)
        .annotate(plan_reason=eligibility.reason_case(rules))
        .order_by()
        .values(c_id=F("id"), c_account=F("account_id"), c_reason=F("plan_reason"))
    )
    inner, inner_params = _sql(reasons)
    recorded = [str(reason) for reason in eligibility.RECORDED]
    day_start = local_day_start(organization, at)
    cycle_start = at - timedelta(days=programme.every_days)
    qn = connection.ops.quote_name
    db_at = _db_time(at)
    sql = (
        f"WITH s AS MATERIALIZED ({inner}) "  # noqa: S608 - names and SQL are ours, values are parameters
        f"INSERT INTO {qn(_TABLE)} ({', '.join(qn(c) for c in _COLUMNS)}) "
        "SELECT %s, %s, %s, s.c_id, s.c_account, 'email', %s, s.c_reason, '', %s, %s, 0, '', '' "
        f"FROM s WHERE s.c_reason IN ({', '.join(['%s'] * len(recorded))}) "
        f"AND NOT EXISTS (SELECT 1 FROM {qn(_TABLE)} seen"
        " WHERE seen.programme_id = %s AND seen.state = %s AND seen.contact_id = s.c_id"
        " AND seen.planned_for >= %s AND (seen.planned_for >= %s OR seen.skip_reason = s.c_reason))"
        f" LIMIT %s RETURNING {qn('skip_reason')}"
    )
    params = (
        *inner_params,
        organization.pk,
        programme.pk,
        programme.survey_id,
        S.SKIPPED.value,
        db_at,
        db_at,
        *recorded,
        programme.pk,
        S.SKIPPED.value,
        _db_time(min(day_start, cycle_start)),
        _db_time(day_start),
        limit,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counts.update(reason for (reason,) in cursor.fetchall())
    return +counts


def programme_plan(
    *, organization: Organization, programme: Programme, at: datetime | None = None
) -> PlanReport:
    """Plans today's share of the programme: the daily cap, or the drip (the cycle's
    population over every_days), less what was planned today already, so a second tick
    plans nothing twice. Records why in-segment contacts were skipped."""
    at = at or current_time()
    report = PlanReport()
    if not (programme.is_active and programme.channel_email and programme.survey.is_active):
        return report
    with eligibility.roomy_sql():
        # One planning run per organization at a time: two programmes planned in parallel
        # could otherwise both pick a contact (fatigue counts planned invitations).
        settings_row = services.survey_settings_for(organization)
        fatigue_days = (
            SurveySettings.objects.select_for_update()
            .values_list("fatigue_days", flat=True)
            .get(pk=settings_row.pk)
        )
        report.quota, report.population = daily_quota(
            organization=organization, programme=programme, at=at
        )
        planned_today = planned_on_day(organization, programme, at)
        if report.quota <= planned_today:
            return report  # today's share is planned: no pass over the segment
        capped: dict[int, int] = {}  # contact → account, held back by the account cap
        prefix = ACCOUNT_CAP_PREFIX
        for attempt in range(ACCOUNT_CAP_ATTEMPTS):
            wanted = report.quota - planned_today
            if wanted <= 0:
                break
            if attempt == ACCOUNT_CAP_ATTEMPTS - 1:
                prefix = (1, 10**12)  # the last look goes all the way down
            sql, params = _pick_sql(
                organization=organization,
                programme=programme,
                at=at,
                fatigue_days=fatigue_days,
                wanted=wanted,
                prefix=prefix,
            )
            picked = _plan_picked(
                organization=organization, programme=programme, at=at, sql=sql, params=params
            )
            report.planned += picked.planned
            capped.update(picked.capped)
            full_prefix = (
                picked.candidates is not None
                and picked.candidates >= wanted * prefix[0] + prefix[1]
            )
            if picked.planned >= wanted or not full_prefix:
                break
            # The account cap held back so many of the first candidates that the prefix
            # ran out: look further down, as far again as the share kept suggests (those
            # planned now count as planned).
            kept = picked.planned / picked.candidates
            prefix = (math.ceil(2 / kept) if kept else prefix[0] * 8, prefix[1] * 2)
            planned_today = planned_on_day(organization, programme, at)
        if report.planned or report.quota > planned_today:
            recorded = _record_skips(
                organization=organization,
                programme=programme,
                at=at,
                fatigue_days=fatigue_days,
                capped=capped,
            )
            report.skipped_by_reason = dict(recorded)
            report.skips_capped = sum(recorded.values()) >= SKIP_RECORD_LIMIT
    log.info(
        "Programme %s planned %s of quota %s; skipped %s",
        programme.pk,
        report.planned,
        report.quota,
        report.skipped_by_reason,
    )
    return report


def programmes_to_plan(organization: Organization):
    return Programme.objects.filter(
        organization=organization, is_active=True, survey__is_active=True, channel_email=True
    )


# --- Forecast -----------------------------------------------------------------------------


@dataclass
class ForecastDay:
    day: date
    sends: int
    expected_answers: float


@dataclass
class Forecast:
    days: list[ForecastDay]
    answer_rate: float
    from_history: bool  # False: the default rate, for want of answered history
    quota: int

    @property
    def total_sends(self) -> int:
        return sum(d.sends for d in self.days)

    @property
    def total_answers(self) -> float:
        return round(sum(d.expected_answers for d in self.days), 1)


def answer_rate(organization: Organization, programme: Programme, at: datetime):
    """(answered ÷ sent, from history?) over the programme's invitations sent at least a
    week before `at`; the default rate without any."""
    totals = Invitation.objects.filter(
        organization=organization, programme=programme, sent_at__lte=at - ANSWER_SETTLE
    ).aggregate(sent=Count("id"), answered=Count("id", filter=Q(answered_at__isnull=False)))
    if not totals["sent"]:
        return DEFAULT_ANSWER_RATE, False
    return totals["answered"] / totals["sent"], True


def programme_forecast(
    *,
    organization: Organization,
    programme: Programme,
    days: int = 14,
    at: datetime | None = None,
) -> Forecast:
    """Sends per day for the next `days` days (in the organization's time zone), and the
    answers to expect from them: what is planned already, plus each day's quota while the
    eligible pool lasts (refilled by contacts whose every_days run out), moved to the next
    business day when the programme sends on business days only."""
    at = at or current_time()
    zone = zone_of(organization.timezone)
    today = local_date(organization, at)
    last = today + timedelta(days=days - 1)
    rate, from_history = answer_rate(organization, programme, at)
    sends = dict.fromkeys((today + timedelta(days=n) for n in range(days)), 0)
    mine = Invitation.objects.filter(organization=organization, programme=programme)
    day_start = local_day_start(organization, at)
    already = (
        mine.filter(
            Q(state__in=[S.PLANNED, S.SENDING], planned_for__gte=day_start)
            | Q(sent_at__gte=day_start)
        )
        .annotate(day=TruncDate(F("planned_for"), tzinfo=zone))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in already:
        if row["day"] in sends:
            sends[row["day"]] += row["n"]
    quota = 0
    if programme.is_active and programme.channel_email and programme.survey.is_active:
        with eligibility.roomy_sql():
            quota, _ = daily_quota(organization=organization, programme=programme, at=at)
            pool = eligibility.unblocked_count(
                organization=organization, programme=programme, at=at
            )
        first_due = at - timedelta(days=programme.every_days)
        due_again = Counter(
            {
                row["day"] + timedelta(days=programme.every_days): row["n"]
                for row in mine.filter(
                    sent_at__gte=first_due, sent_at__lt=first_due + timedelta(days=days + 1)
                )
                .annotate(day=TruncDate(F("sent_at"), tzinfo=zone))
                .values("day")
                .annotate(n=Count("id"))
                .order_by()
            }
        )
        planned_today = planned_on_day(organization, programme, at)
        for offset in range(days):
            day = today + timedelta(days=offset)
            pool += due_again.get(day, 0) if offset else 0
            batch = min(max(0, quota - (planned_today if offset == 0 else 0)), pool)
            pool -= batch
            moment = at if offset == 0 else datetime.combine(day, time(), zone)
            lands = window_for(programme, zone, moment)[0].astimezone(zone).date()
            if lands <= last:
                sends[lands] += batch
    return Forecast(
        days=[
            ForecastDay(day=day, sends=n, expected_answers=round(n * rate, 1))
            for day, n in sends.items()
        ],
        answer_rate=rate,
        from_history=from_history,
        quota=quota,
    )


# --- Dispatch ---------------------------------------------------------------------------


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0
    lost_claims: int = 0  # taken by another dispatcher first
    more: bool = False  # due invitations remain after this batch


def _release_stuck(organization: Organization, now: datetime) -> int:
    """Invitations left in `sending` by a worker that died mid-send. The email may have
    gone out, so they are failed (and shown in the send log) rather than sent twice."""
    return Invitation.objects.filter(
        organization=organization, state=S.SENDING, planned_for__lt=now - STUCK_AFTER
    ).update(state=S.FAILED, last_error="Interrupted while sending; not retried.")


def _why_not_now(invitation: Invitation, fatigue_days: int, now: datetime) -> tuple[str, str]:
    """(state, skip reason) when the invitation must not go out after all, else ("", "")."""
    contact = invitation.contact
    if contact is None or contact.suppressed_reason:
        return S.SUPPRESSED, SkipReason.SUPPRESSED
    if not contact.email:
        return S.SKIPPED, SkipReason.NO_EMAIL
    rested = now - timedelta(days=fatigue_days)
    if (contact.last_surveyed_at and contact.last_surveyed_at >= rested) or (
        contact.last_responded_at and contact.last_responded_at >= rested
    ):
        return S.SKIPPED, SkipReason.FATIGUED
    return "", ""


def _retry_at(invitation: Invitation, organization: Organization, now: datetime) -> datetime:
    moment = now + RETRY_DELAYS[min(invitation.attempts, len(RETRY_DELAYS)) - 1]
    if invitation.programme is None:
        return moment
    contact_tz = invitation.contact.timezone if invitation.contact else ""
    return next_in_window(invitation.programme, zone_of(contact_tz, organization.timezone), moment)


def invitation_send_one(
    *, organization: Organization, invitation_id: int, now: datetime, fatigue_days: int
) -> str:
    """Claims one due invitation by compare-and-set and sends it. Returns what happened:
    "lost" (claimed elsewhere), "sent", "retried", "failed", "suppressed" or "skipped"."""
    claimed = Invitation.objects.filter(
        organization=organization, pk=invitation_id, state=S.PLANNED, planned_for__lte=now
    ).update(state=S.SENDING, attempts=F("attempts") + 1, planned_for=now)
    if not claimed:
        return "lost"
    invitation = Invitation.objects.select_related(
        "contact", "survey", "programme", "organization"
    ).get(pk=invitation_id)
    state, reason = _why_not_now(invitation, fatigue_days, now)
    if state:
        Invitation.objects.filter(pk=invitation_id, state=S.SENDING).update(
            state=state, skip_reason=reason
        )
        return "suppressed" if state == S.SUPPRESSED else "skipped"
    try:
        message_id = emails.invitation_send(invitation=invitation)
    except Exception as exc:  # any ESP or template error: retried on a schedule
        error = f"{type(exc).__name__}: {exc}"[:500]
        if invitation.attempts >= MAX_ATTEMPTS:
            log.warning("Invitation %s failed for good: %s", invitation_id, error)
            Invitation.objects.filter(pk=invitation_id, state=S.SENDING).update(
                state=S.FAILED, last_error=error
            )
            return "failed"
        Invitation.objects.filter(pk=invitation_id, state=S.SENDING).update(
            state=S.PLANNED,
            planned_for=_retry_at(invitation, organization, now),
            last_error=error,
        )
        return "retried"
    # A tracking event may have moved it on already (delivered before the send returned).
    Invitation.objects.filter(pk=invitation_id).update(
        state=Case(When(state=S.SENDING, then=Value(S.SENT)), default=F("state")),
        sent_at=now,
        message_id=(message_id or "")[:200],
        last_error="",
    )
    invitations_changed_on_commit(organization.pk, [invitation_id])
    Contact.objects.filter(pk=invitation.contact_id).update(last_surveyed_at=now)
    return "sent"


def invitations_dispatch(
    *, organization: Organization, now: datetime | None = None, batch: int = 200
) -> DispatchReport:
    """Sends up to `batch` due invitations, oldest first. Each is claimed by compare-and-set
    (planned → sending), so two dispatchers never send one twice; suppression and fatigue
    are checked again just before the send. A failed send is retried after 5, then 30
    minutes (inside the send window), and fails for good after the third attempt."""
    now = now or current_time()
    report = DispatchReport()
    _release_stuck(organization, now)
    fatigue_days = eligibility.fatigue_days_of(organization)
    due = Invitation.objects.filter(
        organization=organization, state=S.PLANNED, planned_for__lte=now
    ).order_by("planned_for", "pk")
    for invitation_id in list(due.values_list("pk", flat=True)[:batch]):
        outcome = invitation_send_one(
            organization=organization,
            invitation_id=invitation_id,
            now=now,
            fatigue_days=fatigue_days,
        )
        if outcome == "lost":
            report.lost_claims += 1
        else:
            setattr(report, outcome, getattr(report, outcome) + 1)
    report.more = due.exists()
    return report


def organizations_with_due(now: datetime):
    """Organizations with invitations due (for the beat; unscoped by the caller)."""
    return Organization.objects.filter(
        Exists(
            Invitation.objects.filter(
                organization=OuterRef("pk"), state=S.PLANNED, planned_for__lte=now
            )
        )
    )


# --- Reminders ----------------------------------------------------------------------------


def reminders_plan(*, organization: Organization, now: datetime | None = None) -> int:
    """Sends the one reminder of each invitation still unanswered reminder_after_days after
    it was sent (sent, delivered or opened; never answered, bounced or suppressed), when it
    is inside the send window in the contact's time zone; later runs catch the others.
    Claimed by compare-and-set on reminder_sent_at. Returns the reminders sent."""
    now = now or current_time()
    sent = 0
    programmes = Programme.objects.filter(
        organization=organization, is_active=True, reminder_after_days__isnull=False
    )
    for programme in programmes:
        cutoff = now - timedelta(days=programme.reminder_after_days)
        waiting = (
            Invitation.objects.filter(
                organization=organization,
                programme=programme,
                state__in=AWAITING_ANSWER,
                answered_at__isnull=True,
                reminder_sent_at__isnull=True,
                sent_at__lte=cutoff,
                sent_at__gt=cutoff - REMINDER_GRACE,
                contact__suppressed_reason="",
            )
            .select_related("contact", "survey", "organization", "programme")
            .order_by("sent_at")
        )
        for invitation in waiting.iterator(chunk_size=200):
            zone = zone_of(invitation.contact.timezone, organization.timezone)
            if next_in_window(programme, zone, now) != now.astimezone(UTC):
                continue
            claimed = Invitation.objects.filter(
                pk=invitation.pk,
                state__in=AWAITING_ANSWER,
                answered_at__isnull=True,
                reminder_sent_at__isnull=True,
            ).update(reminder_sent_at=now)
            if not claimed:
                continue
            invitation.reminder_sent_at = now
            try:
                emails.invitation_send(invitation=invitation, reminder=True)
            except Exception as exc:  # the next run tries again
                Invitation.objects.filter(pk=invitation.pk).update(
                    reminder_sent_at=None,
                    last_error=f"Reminder: {type(exc).__name__}: {exc}"[:500],
                )
                continue
            sent += 1
    return sent


# --- Touchpoint events --------------------------------------------------------------------


def _triggered_delay(programme: Programme, name: str) -> int | None:
    for trigger in programme.triggers or []:
        if isinstance(trigger, dict) and trigger.get("event") == name:
            try:
                return max(0, int(trigger.get("delay_days") or 0))
            except (TypeError, ValueError):
                return 0
    return None


def invitation_plan_triggered(
    *,
    organization: Organization,
    programme: Programme,
    contact: Contact,
    name: str,
    moment: datetime,
) -> tuple[str, Invitation | None]:
    """Plans one triggered invitation of `programme` for `contact` at the first send window
    after `moment`, if eligibility allows. Returns what happened, in words, and the
    invitation (None when skipped). Event triggers and the Delighted-compatible API use it."""
    zone = zone_of(contact.timezone, organization.timezone)
    planned_for = next_in_window(programme, zone, moment)
    reason = eligibility.contact_skip_reason(
        organization=organization, programme=programme, contact=contact, at=planned_for
    )
    if reason == eligibility.NOT_IN_SEGMENT:
        return f"{programme.name}: not in its segment", None
    if reason == SkipReason.ALREADY_PLANNED:
        return f"{programme.name}: {SkipReason.ALREADY_PLANNED.label.lower()}", None
    fields = {
        "organization": organization,
        "programme": programme,
        "survey_id": programme.survey_id,
        "contact": contact,
        "account_id": contact.account_id,
        "trigger": name[:100],
        "planned_for": planned_for,
    }
    if reason is not None:
        # The programme asked this contact within its every_days: "surveyed recently".
        skip = SkipReason.FATIGUED if reason == eligibility.NOT_DUE else SkipReason(reason)
        Invitation.objects.create(**fields, state=S.SKIPPED, skip_reason=skip)
        return f"{programme.name}: skipped, {skip.label.lower()}", None
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(**fields, state=S.PLANNED)
    except IntegrityError:  # planned a moment ago by someone else
        return f"{programme.name}: {SkipReason.ALREADY_PLANNED.label.lower()}", None
    local = planned_for.astimezone(zone)
    return f"{programme.name}: scheduled for {local:%Y-%m-%d %H:%M} {zone.key}", invitation


def touchpoint_record(
    *,
    organization: Organization,
    contact: Contact,
    name: str,
    occurred_at: datetime | None = None,
    properties: dict | None = None,
    external_id: str | None = None,
) -> TouchpointEvent:
    """Stores an event about a contact, once per external_id. Each active programme whose
    triggers name the event plans an invitation delay_days later, inside its send window,
    if the contact is eligible then; the event's outcome says when, or why not."""
    occurred_at = occurred_at or current_time()
    if external_id:
        existing = TouchpointEvent.objects.filter(
            organization=organization, external_id=external_id
        ).first()
        if existing is not None:
            return existing
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = TouchpointEvent.objects.create(
                    organization=organization,
                    contact=contact,
                    name=name,
                    occurred_at=occurred_at,
                    properties=properties or {},
                    external_id=external_id or None,
                )
        except IntegrityError:
            if not external_id:
                raise
            return TouchpointEvent.objects.get(organization=organization, external_id=external_id)
        outcomes, first = [], None
        for programme in programmes_to_plan(organization).select_related("survey"):
            delay = _triggered_delay(programme, name)
            if delay is None:
                continue
            moment = max(occurred_at + timedelta(days=delay), current_time())
            outcome, invitation = invitation_plan_triggered(
                organization=organization,
                programme=programme,
                contact=contact,
                name=name,
                moment=moment,
            )
            outcomes.append(outcome)
            first = first or invitation
        event.outcome = ("; ".join(outcomes) or "No active programme is triggered by it.")[:100]
        event.invitation = first
        event.save(update_fields=["outcome", "invitation"])
    return event


# --- Answers ------------------------------------------------------------------------------


def invitations_mark_answered(*, organization: Organization, response_ids: list[int]) -> int:
    """Marks the invitations the responses answered (answered_at, response_id)."""
    answered = 0
    rows = (
        Response.objects.filter(
            organization=organization, pk__in=response_ids, invitation_id__isnull=False
        )
        .order_by("invitation_id")
        .values_list("pk", "invitation_id", "submitted_at")
    )
    # One transaction (invitations locked in id order): the invitations' change event goes
    # out once for the batch.
    with transaction.atomic():
        for response_id, invitation_id, submitted_at in rows:
            invitation = Invitation.objects.filter(
                organization=organization, pk=invitation_id
            ).first()
            if invitation is None:
                continue
            invitation_mark_answered(
                invitation=invitation, response_id=response_id, moment=submitted_at
            )
            answered += 1
    return answered

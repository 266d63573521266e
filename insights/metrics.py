"""The metrics service: every figure of the exec dashboard, computed from the database.

Aggregation happens in SQL (conditional counts, with the organization and the date range in
the WHERE clause, which is indexed); Python only shapes the rows. Figures a daily rollup
can serve (headline, trend, histogram, response counts) read `insights.models.DailyScore`;
filters it cannot serve (segment, account owner) fall back to indexed raw queries.

The NPS formula lives in `nps_score` and nowhere else; its interval in `nps_interval`.

Public interface, shared by the dashboard page, the metrics API and the weekly digest:
`Filters`, `filters_from_params`, `dashboard`, and one function per figure.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from django.core.exceptions import ValidationError
from django.utils import timezone

from nps_platform.params import whole_number

MIN_SAMPLE = 30
PERIODS = ("week", "month", "quarter")
CONFIDENCE = 0.95
TOP_AT_RISK = 10
CHURN_WINDOW_DAYS = 183  # six months
RENEWAL_WINDOW_DAYS = 90


# --- Filters -------------------------------------------------------------------------------


def _default_range(today: date) -> tuple[date, date]:
    """The last 12 months: from the first day of the month 11 months back, to today."""
    month = today.month - 11
    year = today.year
    while month <= 0:
        month += 12
        year -= 1
    return date(year, month, 1), today


@dataclass(frozen=True)
class Filters:
    """What the dashboard shows: a date range (inclusive), the period of the trend, and
    optional filters. Parsed from the URL by `filters_from_params`; shared by page and API."""

    since: date
    until: date
    period: str = "month"
    segment_id: int | None = None
    survey_id: int | None = None
    channel: str | None = None
    owner_id: int | None = None

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    @property
    def needs_raw(self) -> bool:
        """Segment and owner depend on the account: the daily rollup cannot serve them."""
        return self.segment_id is not None or self.owner_id is not None

    def previous(self) -> Filters:
        """The same filters over the period of equal length just before this one."""
        until = self.since - timedelta(days=1)
        return Filters(
            since=until - timedelta(days=self.days - 1),
            until=until,
            period=self.period,
            segment_id=self.segment_id,
            survey_id=self.survey_id,
            channel=self.channel,
            owner_id=self.owner_id,
        )

    def replace(self, **changes) -> Filters:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return Filters(**values)

    def as_params(self) -> dict[str, str]:
        """Query parameters that reproduce this view (for links and shared URLs)."""
        params = {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "period": self.period,
        }
        for key, value in (
            ("segment", self.segment_id),
            ("survey", self.survey_id),
            ("channel", self.channel),
            ("owner", self.owner_id),
        ):
            if value is not None:
                params[key] = str(value)
        return params


def filters_from_params(organization, params, *, today: date | None = None) -> Filters:
    """Filters from query parameters (`since`, `until`, `period`, `segment`, `survey`,
    `channel`, `owner`). Missing values take defaults (the last 12 months, by month).

    Raises django's ValidationError({"field": "message"}) on a bad value, including a
    segment, survey or owner that is not the organization's.
    """
    from insights import selectors

    today = today or timezone.localdate()
    errors: dict[str, str] = {}

    def text(name):
        value = params.get(name)
        if value is None:
            return None
        value = str(value).strip()
        return value or None

    def parse_date(name):
        value = text(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            errors[name] = f"{name} must be a date as YYYY-MM-DD, not {value[:40]!r}."
            return None

    def parse_id(name):
        value = text(name)
        if value is None:
            return None
        number = whole_number(value)
        if not number:
            errors[name] = f"{name} must be a positive whole number (an id), not {value[:40]!r}."
            return None
        return number

    default_since, default_until = _default_range(today)
    since = parse_date("since")
    until = parse_date("until")
    period = text("period") or "month"
    if period not in PERIODS:
        errors["period"] = f"period must be one of {', '.join(PERIODS)}, not {period[:40]!r}."
    segment_id = parse_id("segment")
    survey_id = parse_id("survey")
    owner_id = parse_id("owner")
    channel = text("channel")
    channels = selectors.channel_values()
    if channel is not None and channel not in channels:
        errors["channel"] = f"channel must be one of {', '.join(channels)}, not {channel[:40]!r}."

    if "since" not in errors and "until" not in errors:
        if since is None and until is None:
            since, until = default_since, default_until
        elif since is None:
            since = _default_range(until)[0]
        elif until is None:
            until = max(since, today)
        if since > until:
            errors["since"] = "since must be on or before until."
        elif (until - since).days > 366 * 10:
            errors["since"] = "The range can span at most ten years."
        elif since.year < 1970 or until.year > 2999:
            errors["since"] = "Dates must fall between 1970 and 2999."
    if (
        segment_id is not None
        and "segment" not in errors
        and not selectors.segment_exists(organization, segment_id)
    ):
        errors["segment"] = f"There is no segment {segment_id}."
    if (
        survey_id is not None
        and "survey" not in errors
        and not selectors.survey_exists(organization, survey_id)
    ):
        errors["survey"] = f"There is no survey {survey_id}."
    if (
        owner_id is not None
        and "owner" not in errors
        and not selectors.owner_exists(organization, owner_id)
    ):
        errors["owner"] = f"There is no member {owner_id} in this organization."
    if errors:
        raise ValidationError(errors)
    return Filters(
        since=since,
        until=until,
        period=period,
        segment_id=segment_id,
        survey_id=survey_id,
        channel=channel,
        owner_id=owner_id,
    )


# --- NPS and its interval ------------------------------------------------------------------


def nps_score(promoters: int, passives: int, detractors: int) -> float | None:
    """THE NPS formula: percent promoters minus percent detractors, −100 to 100.
    None when there are no answers."""
    n = promoters + passives + detractors
    if n == 0:
        return None
    return 100.0 * (promoters - detractors) / n


@lru_cache(maxsize=8)
def _z(confidence: float) -> float:
    """The two-sided normal quantile, by bisection on erf (no scipy); remembered per
    confidence, as every interval and change asks for the same one."""
    target = 1 - (1 - confidence) / 2
    low, high = 0.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _adjusted(promoters: int, passives: int, detractors: int) -> tuple[float, float, float]:
    """Adjusted-Wald (Rocks 2016): add ¾ promoter, ¾ detractor and 1½ passive (n + 3).
    Returns (adjusted NPS as a proportion, its variance per answer, adjusted n)."""
    n_adj = promoters + passives + detractors + 3
    p = (promoters + 0.75) / n_adj
    d = (detractors + 0.75) / n_adj
    nps_adj = p - d
    return nps_adj, p + d - nps_adj**2, n_adj


def nps_interval(
    promoters: int, passives: int, detractors: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The adjusted-Wald confidence interval for NPS (Rocks 2016, The American
    Statistician 70(4)), on the −100…100 scale, clipped to it."""
    nps_adj, variance, n_adj = _adjusted(promoters, passives, detractors)
    margin = _z(confidence) * math.sqrt(variance / n_adj)
    return max(-100.0, 100.0 * (nps_adj - margin)), min(100.0, 100.0 * (nps_adj + margin))


@dataclass(frozen=True)
class Nps:
    """A score with its mix and interval. `nps`, `low`, `high` are None when n == 0;
    `sufficient` is False below MIN_SAMPLE answers (show "insufficient data")."""

    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    low: float | None
    high: float | None
    sufficient: bool

    @classmethod
    def of(cls, promoters: int, passives: int, detractors: int) -> Nps:
        promoters, passives, detractors = int(promoters), int(passives), int(detractors)
        n = promoters + passives + detractors
        if n == 0:
            return cls(0, 0, 0, 0, None, None, None, False)
        low, high = nps_interval(promoters, passives, detractors)
        return cls(
            n=n,
            promoters=promoters,
            passives=passives,
            detractors=detractors,
            nps=nps_score(promoters, passives, detractors),
            low=low,
            high=high,
            sufficient=n >= MIN_SAMPLE,
        )

    @classmethod
    def empty(cls) -> Nps:
        return cls.of(0, 0, 0)

    def _pct(self, count: int) -> float | None:
        return None if self.n == 0 else 100.0 * count / self.n

    @property
    def promoter_pct(self) -> float | None:
        return self._pct(self.promoters)

    @property
    def passive_pct(self) -> float | None:
        return self._pct(self.passives)

    @property
    def detractor_pct(self) -> float | None:
        return self._pct(self.detractors)


@dataclass(frozen=True)
class Change:
    """The change against the previous period, in NPS points, and whether it is significant
    at 95% (a two-sample z test on the adjusted-Wald NPS). None when either side is empty."""

    delta: float | None
    significant: bool


def change(current: Nps, previous: Nps, confidence: float = CONFIDENCE) -> Change:
    """NPS change with its significance flag. Never significant below MIN_SAMPLE."""
    if current.n == 0 or previous.n == 0:
        return Change(None, False)
    delta = current.nps - previous.nps
    a, var_a, n_a = _adjusted(current.promoters, current.passives, current.detractors)
    b, var_b, n_b = _adjusted(previous.promoters, previous.passives, previous.detractors)
    se = math.sqrt(var_a / n_a + var_b / n_b)
    significant = (
        current.sufficient and previous.sufficient and se > 0 and abs(a - b) / se > _z(confidence)
    )
    return Change(delta, bool(significant))


# --- Figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    start: date
    end: date
    label: str
    nps: Nps


@dataclass(frozen=True)
class SegmentRow:
    segment_id: int
    name: str
    nps: Nps
    change: Change


@dataclass(frozen=True)
class AccountLevel:
    """Each account's latest answer per respondent in the period, averaged into one account
    score and classified; `revenue_weighted_nps` weighs each account by its ARR."""

    accounts: int
    nps: Nps
    revenue_weighted_nps: float | None


@dataclass(frozen=True)
class RiskAccount:
    id: int
    name: str
    arr: Decimal
    score: float | None  # None: none of its respondents' latest answers is its own
    renewal_date: date | None
    danger_zone: bool = False


@dataclass(frozen=True)
class RevenueAtRisk:
    """ARR of the accounts (not churned) whose account-level category in the period is
    detractor, with the danger-zone (account score 0–3) and renewal-within-90-days subsets."""

    currency: str
    total: Decimal
    accounts: int
    danger_zone: Decimal
    danger_zone_accounts: int
    renewal_90d: Decimal
    renewal_90d_accounts: int
    top: list = field(default_factory=list)  # RiskAccount, by ARR descending


@dataclass(frozen=True)
class Rates:
    delivered: int
    answered: int
    response_rate: float | None  # answered / delivered invitations, 0–1
    with_comment: int
    verbatim_rate: float | None  # responses with a comment / responses, 0–1
    responses: int = 0


@dataclass(frozen=True)
class Coverage:
    accounts_total: int
    accounts_surveyed: int
    account_share: float | None
    arr_share: float | None
    low_health_share: float | None
    open_ticket_share: float | None
    bias_warning: bool
    message: str


@dataclass(frozen=True)
class LoopHealth:
    detractors: int
    contacted_within_sla_share: float | None
    median_hours_to_first_contact: float | None
    median_hours_to_close: float | None
    open: int
    overdue: int
    outcomes: dict[str, int]
    save_rate: float | None
    saved: int = 0
    detractor_accounts: int = 0


@dataclass(frozen=True)
class ThemeRow:
    theme: str
    label: str
    detractors: int
    promoters: int
    total: int
    trend: list[int]  # mentions per trend period, aligned with Dashboard.trend


@dataclass(frozen=True)
class ChurnRow:
    category: str
    accounts: int
    churned: int
    rate: float | None


@dataclass(frozen=True)
class Churn:
    rows: list[ChurnRow]
    predictive: bool | None  # None: too few accounts to tell
    message: str


@dataclass(frozen=True)
class Dashboard:
    filters: Filters
    headline: Nps
    previous: Nps
    change: Change
    trend: list[TrendPoint]
    histogram: list[int]
    segments: list[SegmentRow]
    account_level: AccountLevel
    revenue_at_risk: RevenueAtRisk
    rates: Rates
    coverage: Coverage
    loop: LoopHealth
    themes: list[ThemeRow]
    churn: Churn


def headline(organization, filters: Filters) -> Nps:
    """NPS over the filters' range."""
    from insights import selectors

    return Nps.of(*selectors.category_counts(organization, filters))


def previous(organization, filters: Filters) -> Nps:
    """NPS over the period of equal length just before the filters' range."""
    return headline(organization, filters.previous())


def trend(organization, filters: Filters) -> list[TrendPoint]:
    """NPS per week, month or quarter (filters.period) across the range; every period is
    present, empty ones with n == 0. Edge periods are clipped to the range."""
    from insights import selectors

    counts = selectors.category_counts_by_period(organization, filters)
    points = []
    for start, end, label in periods(filters):
        p, pa, d = counts.get(start, (0, 0, 0))
        points.append(TrendPoint(start=start, end=end, label=label, nps=Nps.of(p, pa, d)))
    return points


def histogram(organization, filters: Filters) -> list[int]:
    """Answers per score 0…10 (eleven counts)."""
    from insights import selectors

    return selectors.score_histogram(organization, filters)


def segments(organization, filters: Filters) -> list[SegmentRow]:
    """NPS and change per saved segment of the organization, by name."""
    from insights import selectors

    return selectors.segment_rows(organization, filters)


def account_level(organization, filters: Filters) -> AccountLevel:
    from insights import selectors

    return selectors.account_level(organization, filters)


def revenue_at_risk(organization, filters: Filters) -> RevenueAtRisk:
    from insights import selectors

    return selectors.revenue_at_risk(organization, filters)


def rates(organization, filters: Filters) -> Rates:
    from insights import selectors

    return selectors.rates(organization, filters)


def coverage(organization, filters: Filters) -> Coverage:
    from insights import selectors

    return selectors.coverage(organization, filters)


def loop_health(organization, filters: Filters) -> LoopHealth:
    from insights import selectors

    return selectors.loop_health(organization, filters)


def themes(organization, filters: Filters) -> list[ThemeRow]:
    from insights import selectors

    return selectors.themes(organization, filters)


def churn(organization, filters: Filters) -> Churn:
    from insights import selectors

    return selectors.churn(organization, filters)


def dashboard(organization, filters: Filters) -> Dashboard:
    """Every figure of the dashboard for the filters. Figures that share a read (the
    per-account scores) compute it once; on PostgreSQL some reads run aside, on a second
    connection (`selectors.reads_aside`)."""
    from insights import selectors

    with selectors.shared_reads(), selectors.reads_aside(organization, filters):
        return _dashboard(organization, filters)


def _dashboard(organization, filters: Filters) -> Dashboard:
    current = headline(organization, filters)
    before = previous(organization, filters)
    return Dashboard(
        filters=filters,
        headline=current,
        previous=before,
        change=change(current, before),
        trend=trend(organization, filters),
        histogram=histogram(organization, filters),
        segments=segments(organization, filters),
        account_level=account_level(organization, filters),
        revenue_at_risk=revenue_at_risk(organization, filters),
        rates=rates(organization, filters),
        coverage=coverage(organization, filters),
        loop=loop_health(organization, filters),
        themes=themes(organization, filters),
        churn=churn(organization, filters),
    )


CACHE_SECONDS = 60


def dashboard_cached(organization, filters: Filters) -> Dashboard:
    """`dashboard` at most CACHE_SECONDS old, from the cache (Redis when configured): for
    repeated page loads, the API and the weekly digest. Figures are at most a minute stale,
    as the rollups are."""
    from django.core.cache import cache

    digest = hashlib.sha256(repr(filters).encode()).hexdigest()[:32]
    key = f"insights:dashboard:{organization.pk}:{digest}"
    board = cache.get(key)
    if board is None:
        board = dashboard(organization, filters)
        cache.set(key, board, CACHE_SECONDS)
    return board


# --- Periods -------------------------------------------------------------------------------


def period_start(day: date, period: str) -> date:
    """The first day of the week (Monday), month or quarter holding `day`."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _next_start(start: date, period: str) -> date:
    if period == "week":
        return start + timedelta(days=7)
    months = 1 if period == "month" else 3
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def period_label(start: date, period: str) -> str:
    if period == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return start.strftime("%Y-%m")
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def periods(filters: Filters) -> list[tuple[date, date, str]]:
    """(start, end, label) of each period across the range; starts are the period's natural
    start (used as keys), ends are clipped to `until`."""
    out = []
    start = period_start(filters.since, filters.period)
    while start <= filters.until:
        following = _next_start(start, filters.period)
        end = min(following - timedelta(days=1), filters.until)
        out.append((start, end, period_label(start, filters.period)))
        start = following
    return out

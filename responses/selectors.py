"""Reads for responses, shared by the API and pages. `get_<thing>_for(organization, id)`
answers 404 for another tenant's row."""

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.apps import apps
from django.db import connections
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils.timezone import now

from accounts.models import OPEN_TICKET_STATUSES, Account, Segment, SupportTicket
from accounts.selectors import accounts_in_segment, accounts_of, segments_of
from nps_platform.models import Organization
from nps_platform.params import whole_number
from responses.models import Category, Channel, Response, ResponseTheme, Theme


def responses_of(organization: Organization) -> QuerySet[Response]:
    """The organization's responses with their contact and account (one query for a page)."""
    return Response.objects.filter(organization=organization).select_related("contact", "account")


def get_response_for(organization: Organization, response_id: int) -> Response:
    return get_object_or_404(responses_of(organization), pk=response_id)


# --- The explorer, its export and (later) the dashboard -------------------------------------
#
# One parser for the query string (`response_filters`) and one selector
# (`responses_filtered`), so the page, its CSV export and any later reader of the same
# link always see the same rows.

SEARCH_MAX = 200
THEME_SLUG = re.compile(r"^[a-z0-9_-]{1,50}$")


@dataclass(frozen=True)
class ResponseFilters:
    """The explorer's filters, parsed leniently: a value that is not valid (or names another
    tenant's segment) is left out instead of failing, so a stale link still opens."""

    q: str = ""
    score: int | None = None
    category: str = ""
    segment: Segment | None = None
    theme: str = ""
    date_from: date | None = None
    date_to: date | None = None
    has_comment: bool | None = None
    owner: int | str | None = None  # a member's user id, or "none" for unowned accounts
    channel: str = ""
    account: Account | None = None

    @property
    def is_filtered(self) -> bool:
        return any(
            value not in (None, "")
            for value in (
                self.q,
                self.score,
                self.category,
                self.segment,
                self.theme,
                self.date_from,
                self.date_to,
                self.has_comment,
                self.owner,
                self.channel,
                self.account,
            )
        )


def _param(params, name: str) -> str:
    value = params.get(name) if params is not None else None
    # NUL: text PostgreSQL cannot hold, typed or pasted into a query string.
    return value.replace("\x00", "").strip() if isinstance(value, str) else ""


def _a_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def response_filters(organization: Organization, params, *, segment_list=None) -> ResponseFilters:
    """Parses query parameters (request.GET or a dict): q, score, category, segment, theme,
    from, to (YYYY-MM-DD, in the organization's time zone), has_comment (yes/no), owner
    (user id or "none"), channel and account (an account's id: its answers only). Pass
    `segment_list` when the caller already loaded the organization's segments, to save the
    lookup."""
    score = whole_number(_param(params, "score"))
    category = _param(params, "category")
    channel = _param(params, "channel")
    theme = _param(params, "theme").lower()
    has_comment = {"yes": True, "no": False}.get(_param(params, "has_comment"))
    owner: int | str | None = _param(params, "owner")
    owner = whole_number(owner) if owner != "none" else "none"
    segment = None
    segment_id = _param(params, "segment")
    if (segment_pk := whole_number(segment_id)) is not None:
        if segment_list is not None:
            segment = next((s for s in segment_list if s.pk == segment_pk), None)
        else:
            segment = segments_of(organization).filter(pk=segment_pk).first()
    account = None
    account_id = _param(params, "account")
    if (account_pk := whole_number(account_id)) is not None:
        account = accounts_of(organization).filter(pk=account_pk).first()
    return ResponseFilters(
        q=_param(params, "q")[:SEARCH_MAX],
        score=score if score is not None and score <= 10 else None,
        category=category if category in Category.values else "",
        segment=segment,
        theme=theme if THEME_SLUG.match(theme) else "",
        date_from=_a_date(_param(params, "from")),
        date_to=_a_date(_param(params, "to")),
        has_comment=has_comment,
        owner=owner,
        channel=channel if channel in Channel.values else "",
        account=account,
    )


def full_text_search_enabled(using: str = "default") -> bool:
    """PostgreSQL full-text search (stemmed, English) once django.contrib.postgres is
    installed; a case-insensitive substring match everywhere else."""
    return connections[using].vendor == "postgresql" and apps.is_installed(
        "django.contrib.postgres"
    )


def comments_matching(queryset: QuerySet[Response], text: str) -> QuerySet[Response]:
    text = text.strip()
    if not text:
        return queryset
    if full_text_search_enabled(queryset.db):
        from django.contrib.postgres.search import SearchQuery, SearchVector

        return queryset.alias(comment_search=SearchVector("comment", config="english")).filter(
            comment_search=SearchQuery(text, config="english", search_type="websearch")
        )
    return queryset.filter(comment__icontains=text)


def _day_start(day: date, organization: Organization) -> datetime:
    try:
        zone = zoneinfo.ZoneInfo(organization.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return datetime.combine(day, time.min, tzinfo=zone)


def responses_filtered(organization: Organization, params) -> QuerySet[Response]:
    """The responses the filters select, newest first, with contact, account and owner.
    `params` is a ResponseFilters or the query parameters themselves (see response_filters)."""
    filters = (
        params if isinstance(params, ResponseFilters) else response_filters(organization, params)
    )
    responses = responses_of(organization).select_related("account__owner")
    if filters.score is not None:
        responses = responses.filter(score=filters.score)
    if filters.category:
        responses = responses.filter(category=filters.category)
    if filters.channel:
        responses = responses.filter(channel=filters.channel)
    if filters.has_comment is not None:
        responses = responses.filter(has_comment=filters.has_comment)
    if filters.account is not None:
        responses = responses.filter(account_id=filters.account.pk)
    if filters.segment is not None:
        responses = responses.filter(
            account__in=accounts_in_segment(organization, filters.segment).values("pk")
        )
    if filters.theme:
        responses = responses.filter(
            Exists(
                ResponseTheme.objects.filter(
                    organization=organization, response=OuterRef("pk"), theme=filters.theme
                )
            )
        )
    if filters.date_from:
        responses = responses.filter(submitted_at__gte=_day_start(filters.date_from, organization))
    if filters.date_to:
        responses = responses.filter(
            submitted_at__lt=_day_start(filters.date_to + timedelta(days=1), organization)
        )
    if filters.owner == "none":
        responses = responses.filter(account__owner__isnull=True)
    elif filters.owner is not None:
        responses = responses.filter(account__owner_id=filters.owner)
    if filters.q:
        responses = comments_matching(responses, filters.q)
    return responses.order_by("-submitted_at", "-id")


def with_open_tickets(organization: Organization, responses: QuerySet[Response]):
    """Adds `open_tickets` (the account's open and pending tickets) as a subquery: one query
    for a whole page, never one per row."""
    open_tickets = (
        SupportTicket.objects.filter(
            organization=organization,
            account=OuterRef("account_id"),
            status__in=OPEN_TICKET_STATUSES,
        )
        .order_by()
        .values("account")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return responses.annotate(
        open_tickets=Coalesce(Subquery(open_tickets, output_field=IntegerField()), Value(0))
    )


def contact_responses(
    organization: Organization, response: Response, *, limit: int = 20
) -> list[Response]:
    """The same person's other answers, newest first: the timeline on a response's page."""
    if response.contact_id is None:
        return []
    return list(
        responses_of(organization)
        .filter(contact_id=response.contact_id)
        .exclude(pk=response.pk)
        .order_by("-submitted_at", "-id")[:limit]
    )


# --- NPS --------------------------------------------------------------------------------------


def nps_of_counts(promoters: int, passives: int, detractors: int) -> int | None:
    """NPS = % promoters − % detractors, rounded half away from zero; None without answers.

    The one place the formula lives in this app, so it can be swapped for the metrics
    service's."""
    total = promoters + passives + detractors
    if not total:
        return None
    exact = Decimal((promoters - detractors) * 100) / Decimal(total)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class NpsSummary:
    promoters: int
    passives: int
    detractors: int
    total: int
    nps: int | None

    def _percent(self, count: int) -> float:
        return count * 100 / self.total if self.total else 0.0

    @property
    def promoter_percent(self) -> float:
        return self._percent(self.promoters)

    @property
    def passive_percent(self) -> float:
        return self._percent(self.passives)

    @property
    def detractor_percent(self) -> float:
        return self._percent(self.detractors)


def nps_summary(queryset: QuerySet[Response]) -> NpsSummary:
    """Counts by category and the NPS of any response queryset, in one aggregate query."""
    counts = queryset.order_by().aggregate(
        promoters=Count("pk", filter=Q(category=Category.PROMOTER)),
        passives=Count("pk", filter=Q(category=Category.PASSIVE)),
        detractors=Count("pk", filter=Q(category=Category.DETRACTOR)),
        total=Count("pk"),
    )
    return NpsSummary(
        promoters=counts["promoters"],
        passives=counts["passives"],
        detractors=counts["detractors"],
        total=counts["total"],
        nps=nps_of_counts(counts["promoters"], counts["passives"], counts["detractors"]),
    )


# --- An account's answers (its panel on the account page) -------------------------------------

ACCOUNT_NPS_WINDOW = timedelta(days=365)
ACCOUNT_RECENT = 12


@dataclass(frozen=True)
class AccountAnswers:
    summary: NpsSummary  # the answers of the last 12 months
    total: int  # every answer, whenever it came
    since: datetime  # where the 12 months start
    recent: list[Response]  # the latest answers, newest first, with their contact


def account_answers(
    organization: Organization,
    account: Account,
    *,
    recent: int = ACCOUNT_RECENT,
    moment: datetime | None = None,
) -> AccountAnswers:
    """An account's NPS over the last 12 months with its mix, how many answers it has in all,
    and its latest `recent` answers: two queries whatever the number of answers (one when it
    has none)."""
    since = (moment or now()) - ACCOUNT_NPS_WINDOW
    answers = Response.objects.filter(organization=organization, account=account)
    in_window = Q(submitted_at__gte=since)
    counts = answers.order_by().aggregate(
        promoters=Count("pk", filter=in_window & Q(category=Category.PROMOTER)),
        passives=Count("pk", filter=in_window & Q(category=Category.PASSIVE)),
        detractors=Count("pk", filter=in_window & Q(category=Category.DETRACTOR)),
        in_window=Count("pk", filter=in_window),
        total=Count("pk"),
    )
    summary = NpsSummary(
        promoters=counts["promoters"],
        passives=counts["passives"],
        detractors=counts["detractors"],
        total=counts["in_window"],
        nps=nps_of_counts(counts["promoters"], counts["passives"], counts["detractors"]),
    )
    latest = []
    if counts["total"]:
        latest = list(answers.select_related("contact").order_by("-submitted_at", "-id")[:recent])
    return AccountAnswers(summary=summary, total=counts["total"], since=since, recent=latest)


# --- Themes -----------------------------------------------------------------------------------


def themes_of(organization: Organization) -> QuerySet[Theme]:
    """The organization's additions to the theme taxonomy."""
    return Theme.objects.filter(organization=organization).order_by("name", "slug")


def get_theme_for(organization: Organization, theme_id: int) -> Theme:
    return get_object_or_404(themes_of(organization), pk=theme_id)

"""Reads for accounts, shared by pages, the API and later apps (drafts, cadence, dashboards).
`get_<thing>_for(organization, id)` answers 404 for another tenant's row."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Avg, F, Q, QuerySet
from django.db.models.functions import TruncMonth
from django.shortcuts import get_object_or_404
from django.utils.timezone import now

from accounts import segments
from accounts.models import (
    OPEN_TICKET_STATUSES,
    Account,
    Contact,
    ImportJob,
    Segment,
    SupportTicket,
    UsageSnapshot,
)
from nps_platform.models import Organization


def accounts_of(organization: Organization) -> QuerySet[Account]:
    return Account.objects.filter(organization=organization).select_related("owner")


def contacts_of(organization: Organization) -> QuerySet[Contact]:
    return Contact.objects.filter(organization=organization).select_related("account")


def tickets_of(organization: Organization) -> QuerySet[SupportTicket]:
    return SupportTicket.objects.filter(organization=organization).select_related(
        "account", "contact"
    )


def usage_of(organization: Organization) -> QuerySet[UsageSnapshot]:
    return UsageSnapshot.objects.filter(organization=organization).select_related("account")


def segments_of(organization: Organization) -> QuerySet[Segment]:
    return Segment.objects.filter(organization=organization)


def imports_of(organization: Organization) -> QuerySet[ImportJob]:
    return ImportJob.objects.filter(organization=organization).select_related("created_by")


def accounts_matching(organization: Organization, rules: dict) -> QuerySet[Account]:
    """Accounts a segment rule selects, as one query."""
    return accounts_of(organization).filter(segments.accounts_q(rules))


def contacts_matching(organization: Organization, rules: dict) -> QuerySet[Contact]:
    return contacts_of(organization).filter(segments.contacts_q(rules))


def accounts_in_segment(organization: Organization, segment: Segment) -> QuerySet[Account]:
    return accounts_matching(organization, segment.rules)


def contacts_in_segment(organization: Organization, segment: Segment) -> QuerySet[Contact]:
    return contacts_matching(organization, segment.rules)


def segment_counts(organization: Organization, rules: dict) -> dict[str, int]:
    return {
        "accounts": accounts_matching(organization, rules).count(),
        "contacts": contacts_matching(organization, rules).count(),
    }


def get_account_for(organization: Organization, account_id: int) -> Account:
    return get_object_or_404(accounts_of(organization), pk=account_id)


def get_contact_for(organization: Organization, contact_id: int) -> Contact:
    return get_object_or_404(contacts_of(organization), pk=contact_id)


def get_ticket_for(organization: Organization, ticket_id: int) -> SupportTicket:
    return get_object_or_404(tickets_of(organization), pk=ticket_id)


def get_usage_for(organization: Organization, usage_id: int) -> UsageSnapshot:
    return get_object_or_404(usage_of(organization), pk=usage_id)


def get_segment_for(organization: Organization, segment_id: int) -> Segment:
    return get_object_or_404(segments_of(organization), pk=segment_id)


def get_import_for(organization: Organization, import_id: int) -> ImportJob:
    return get_object_or_404(imports_of(organization), pk=import_id)


# --- Account context ------------------------------------------------------------------------


@dataclass
class UsageTrend:
    direction: str  # "rising" | "falling" | "flat" | "unknown"
    change_percent: float | None
    recent_average: float | None
    previous_average: float | None


@dataclass
class AccountContext:
    """What a CS manager (and a draft) should know about an account at a glance."""

    account: Account
    tenure_days: int | None
    renewal_in_days: int | None
    open_tickets: int
    recent_tickets: list[SupportTicket] = field(default_factory=list)
    usage_trend: UsageTrend | None = None


def _trend(recent, previous) -> UsageTrend:
    if recent is None or not previous:
        return UsageTrend("unknown", None, recent, previous)
    change = (recent - previous) / previous * 100
    direction = "rising" if change > 10 else "falling" if change < -10 else "flat"
    return UsageTrend(direction, round(change, 1), round(recent, 1), round(previous, 1))


def usage_trends(organization: Organization, account_ids, *, today: date | None = None):
    """usage_trend for many accounts in one query: {account id: UsageTrend}."""
    today = today or now().date()
    recent_start, previous_start = today - timedelta(days=30), today - timedelta(days=60)
    rows = (
        UsageSnapshot.objects.filter(
            organization=organization,
            account_id__in=list(account_ids),
            date__gt=previous_start,
            date__lte=today,
        )
        .values("account_id")
        .annotate(
            recent=Avg("active_users", filter=Q(date__gt=recent_start)),
            previous=Avg("active_users", filter=Q(date__lte=recent_start)),
        )
    )
    found = {row["account_id"]: _trend(row["recent"], row["previous"]) for row in rows}
    return {pk: found.get(pk, _trend(None, None)) for pk in account_ids}


def usage_trend(organization: Organization, account: Account, *, today: date | None = None):
    """Average active users over the last 30 days against the 30 days before: a change of
    more than 10% either way is rising or falling."""
    return usage_trends(organization, [account.pk], today=today)[account.pk]


def account_context(organization: Organization, account: Account) -> AccountContext:
    today = now().date()
    tickets = SupportTicket.objects.filter(organization=organization, account=account)
    return AccountContext(
        account=account,
        tenure_days=account.tenure_days(today),
        renewal_in_days=(account.renewal_date - today).days if account.renewal_date else None,
        open_tickets=tickets.filter(status__in=OPEN_TICKET_STATUSES).count(),
        recent_tickets=list(tickets.select_related("contact").order_by("-opened_at")[:5]),
        usage_trend=usage_trend(organization, account, today=today),
    )


# --- The accounts list ----------------------------------------------------------------------

HEALTH_BANDS = {
    "at_risk": ("At risk (under 40)", Q(health_score__lt=40)),
    "watch": ("Watch (40–69)", Q(health_score__gte=40, health_score__lt=70)),
    "healthy": ("Healthy (70 and up)", Q(health_score__gte=70)),
    "unknown": ("Unknown", Q(health_score__isnull=True)),
}

ACCOUNT_SORTS = {
    "name": ("Name (A–Z)", [F("name").asc(), F("pk").asc()]),
    "arr_desc": ("ARR, high to low", [F("arr").desc(nulls_last=True), F("name").asc()]),
    "arr": ("ARR, low to high", [F("arr").asc(nulls_last=True), F("name").asc()]),
    "score": ("Last score, low to high", [F("last_score").asc(nulls_last=True), F("name").asc()]),
    "score_desc": (
        "Last score, high to low",
        [F("last_score").desc(nulls_last=True), F("name").asc()],
    ),
}


def plans_of(organization: Organization) -> list[str]:
    """The distinct non-empty plans of the organization's accounts, A–Z."""
    return list(
        Account.objects.filter(organization=organization)
        .exclude(plan="")
        .order_by("plan")
        .values_list("plan", flat=True)
        .distinct()
    )


def accounts_filtered(
    organization: Organization,
    *,
    q: str = "",
    rules: dict | None = None,
    plan: str = "",
    owner: str | int | None = None,
    health: str = "",
    stage: str = "",
    sort: str = "name",
) -> QuerySet[Account]:
    """The accounts list: search over name, domain and external_id, then filters, then sort.

    `rules` are a segment's (validated) rules; `owner` is a user id or "none" for unowned.
    """
    accounts = accounts_of(organization)
    if q := (q or "").strip():
        accounts = accounts.filter(
            Q(name__icontains=q) | Q(domain__icontains=q) | Q(external_id__icontains=q)
        )
    if rules is not None:
        accounts = accounts.filter(segments.accounts_q(rules))
    if plan:
        accounts = accounts.filter(plan=plan)
    if owner == "none":
        accounts = accounts.filter(owner__isnull=True)
    elif owner:
        accounts = accounts.filter(owner_id=owner)
    if health in HEALTH_BANDS:
        accounts = accounts.filter(HEALTH_BANDS[health][1])
    if stage:
        accounts = accounts.filter(lifecycle_stage=stage)
    return accounts.order_by(*ACCOUNT_SORTS.get(sort, ACCOUNT_SORTS["name"])[1])


# --- The account page -----------------------------------------------------------------------


def contacts_of_account(organization: Organization, account: Account) -> QuerySet[Contact]:
    return Contact.objects.filter(organization=organization, account=account).order_by(
        "name", "email", "pk"
    )


def _month_start(day: date, back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def monthly_active_users(
    organization: Organization, account: Account, *, months: int = 12, today: date | None = None
) -> list[tuple[date, float | None]]:
    """(first day of the month, average daily active users or None) for the last `months`
    months including the current one, oldest first, in one aggregate query."""
    today = today or now().date()
    start = _month_start(today, months - 1)
    rows = (
        UsageSnapshot.objects.filter(
            organization=organization, account=account, date__gte=start, date__lte=today
        )
        .annotate(month=TruncMonth("date"))
        .order_by("month")
        .values("month")
        .annotate(average=Avg("active_users"))
    )
    averages = {}
    for row in rows:
        month = row["month"]
        month = month.date() if hasattr(month, "date") and callable(month.date) else month
        averages[month] = round(float(row["average"]), 1)
    series = []
    for back in range(months - 1, -1, -1):
        month = _month_start(today, back)
        series.append((month, averages.get(month)))
    return series

"""Who may be asked by a programme at a given moment: the one eligibility rule.

`exclusions()` is the rule, as an ordered list of reasons, each a condition on the contact
(and its account) and/or on its invitations. Everything else derives from it and runs as
SQL over the programme's segment, never loading contacts:

- `skip_reasons()` annotates each in-segment contact with the FIRST reason it is excluded
  (a CASE expression; NULL when eligible), so "why wasn't Ann surveyed?" is one query;
- `eligible_contacts()` is the same queryset where the reason is NULL;
- `any_of()` folds rules into one condition, for the planner's single pass (see
  scheduler.py), `unblocked_count()` counts the waiting pool, and `cycle_population()`
  who the cadence works through in one cycle (the drip);
- `coverage()` compares what the segment reaches with the whole customer base.

The conditions on invitations are uncorrelated `IN (SELECT …)` subqueries: PostgreSQL
builds each once into a hash (given the work_mem of `roomy_sql()`), so a contact costs a
few hash probes. The account cap is a correlated count over the (organization, account)
index, cheap for one contact; the planner counts places for all accounts at once instead.

Sampling must not bias the score: nothing here excludes on open tickets, health or past
scores, and `coverage()` warns when a segment under-samples low-health accounts or ARR.
"""

import math
import operator
import zoneinfo
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache, reduce

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.lookups import GreaterThanOrEqual
from django.utils.timezone import now

from accounts.models import Account, Contact, LifecycleStage
from accounts.selectors import contacts_in_segment, contacts_of
from nps_platform.models import Organization
from surveys.models import (
    OPEN_STATES,
    Invitation,
    InvitationState,
    Programme,
    SkipReason,
    SurveySettings,
)

# Reasons the annotation may give besides SkipReason. Neither is recorded as a skip: the
# cadence itself says "not yet", and a segment says who the programme is for at all.
NOT_DUE = "not_due"  # this programme asked the contact within its every_days
NOT_IN_SEGMENT = "not_in_segment"

# Reasons that hold until something about the contact or account changes: the drip spreads
# the rest of the segment (the cycle's population) over every_days.
STANDING = (SkipReason.SUPPRESSED, SkipReason.NO_EMAIL, SkipReason.CHURNED, SkipReason.TENURE)
# Reasons a planning tick records as skipped invitations.
RECORDED = (*STANDING, SkipReason.FATIGUED, SkipReason.ACCOUNT_CAP)

LOW_HEALTH = 40  # health_score below this is a low-health account
COVERAGE_RATIO = 0.7  # warn when a share falls below this fraction of the overall share
DEFAULT_FATIGUE_DAYS = SurveySettings._meta.get_field("fatigue_days").default


@dataclass(frozen=True)
class Exclusion:
    """One reason not to ask: a condition on the contact (and its account), and/or on the
    contact's invitations (it has one matching `invitations`). `condition` joins both."""

    reason: str
    contact: Q | None = None
    invitations: Q | None = None
    condition: Q = field(default_factory=Q)


# --- Time helpers shared with the scheduler -----------------------------------------------


@lru_cache(maxsize=512)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def zone_of(name: str | None, fallback: str | None = None) -> zoneinfo.ZoneInfo:
    """The named time zone, else the fallback (the organization's), else UTC."""
    return _zone(name or "") or _zone(fallback or "") or zoneinfo.ZoneInfo("UTC")


def local_day_start(organization: Organization, at: datetime) -> datetime:
    """Midnight of `at`'s day in the organization's time zone (aware)."""
    zone = zone_of(organization.timezone)
    local = at.astimezone(zone)
    return datetime.combine(local.date(), datetime.min.time(), zone)


def local_date(organization: Organization, at: datetime) -> date:
    return at.astimezone(zone_of(organization.timezone)).date()


@contextmanager
def roomy_sql(work_mem: str = "128MB"):
    """A transaction in which PostgreSQL may hash the `IN (SELECT …)` subqueries of the rule
    for a million contacts, instead of rescanning them per row; no JIT, no parallel
    workers. Other databases: just the transaction."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL work_mem = '{work_mem}'")  # a constant, not input
                # Each statement reads a segment once: compiling its expressions (JIT)
                # costs more than it saves.
                cursor.execute("SET LOCAL jit = off")
                # A background job on one core: parallel workers would take the cores
                # web requests need, and measured slower on a busy two-core host.
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        yield


# --- The rule -----------------------------------------------------------------------------


def fatigue_days_of(organization: Organization) -> int:
    days = (
        SurveySettings.objects.filter(organization=organization)
        .values_list("fatigue_days", flat=True)
        .first()
    )
    return DEFAULT_FATIGUE_DAYS if days is None else days


def _contact_ids(invitations: QuerySet[Invitation]) -> QuerySet:
    return invitations.filter(contact_id__isnull=False).values("contact_id")


def open_invitations(organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(organization=organization, state__in=OPEN_STATES)


def account_usage(organization: Organization, programme: Programme, at: datetime) -> Q:
    """A contact that takes one of its account's `account_cap` places: surveyed within
    account_cap_days (by any programme), or with an invitation planned or being sent."""
    since = at - timedelta(days=programme.account_cap_days)
    return Q(last_surveyed_at__gte=since) | Q(pk__in=_contact_ids(open_invitations(organization)))


def account_used(organization: Organization, programme: Programme, at: datetime) -> Subquery:
    """How many of the contact's account's places are taken (a correlated count over the
    (organization, account) index; NULL for no account or none taken)."""
    return Subquery(
        Contact.objects.filter(organization=organization, account_id=OuterRef("account_id"))
        .filter(account_usage(organization, programme, at))
        .order_by()
        .values("account_id")
        .annotate(used=Count("id"))
        .values("used")[:1]
    )


SENT_STATES = [
    InvitationState.SENT,
    InvitationState.DELIVERED,
    InvitationState.OPENED,
    InvitationState.ANSWERED,
    InvitationState.BOUNCED,
    InvitationState.FAILED,
]
# A sent invitation's planned_for is the moment it was claimed for sending: a bound on
# sent_at the (programme, state, planned_for) index can use, with a week's slack.
SENT_SLACK = timedelta(days=7)


def _invited(organization: Organization, invitations: Q) -> Q:
    return Q(pk__in=_contact_ids(Invitation.objects.filter(invitations, organization=organization)))


def _exclusion(organization, reason, *, contact=None, invitations=None) -> Exclusion:
    condition = Q()
    if contact is not None:
        condition |= contact
    if invitations is not None:
        condition |= _invited(organization, invitations)
    return Exclusion(reason, contact=contact, invitations=invitations, condition=condition)


def exclusions(
    *,
    organization: Organization,
    programme: Programme,
    at: datetime,
    fatigue_days: int | None = None,
) -> list[Exclusion]:
    """THE eligibility rule: why a contact of the programme's segment may not be asked at
    `at`, in the order the first matching reason is reported. A contact matching none is
    eligible. Never excludes on open tickets, health or scores (that would bias the NPS)."""
    if fatigue_days is None:
        fatigue_days = fatigue_days_of(organization)

    def rule(reason, **parts):
        return _exclusion(organization, reason, **parts)

    rules = [rule(SkipReason.SUPPRESSED, contact=~Q(suppressed_reason=""))]
    if programme.channel_email:
        rules.append(rule(SkipReason.NO_EMAIL, contact=Q(email__isnull=True) | Q(email="")))
    # Account conditions as `account_id IN (…)` over the (few) accounts concerned: a small
    # hash rather than a join of every contact with every account.
    accounts = Account.objects.filter(organization=organization)
    rules.append(
        rule(
            SkipReason.CHURNED,
            contact=Q(
                account_id__in=accounts.filter(
                    Q(churned_at__isnull=False) | Q(lifecycle_stage=LifecycleStage.CHURNED)
                ).values("id")
            ),
        )
    )
    if programme.min_tenure_days:
        # An account without a sign-up date has an unknown tenure: it is not excluded.
        joined_by = local_date(organization, at) - timedelta(days=programme.min_tenure_days)
        rules.append(
            rule(
                SkipReason.TENURE,
                contact=Q(account_id__in=accounts.filter(signed_up_on__gt=joined_by).values("id")),
            )
        )
    rules.append(
        rule(
            SkipReason.ALREADY_PLANNED,
            invitations=Q(programme=programme, state__in=OPEN_STATES),
        )
    )
    due_from = at - timedelta(days=programme.every_days)
    rules.append(
        rule(
            NOT_DUE,
            invitations=Q(
                programme=programme,
                state__in=SENT_STATES,
                planned_for__gte=due_from - SENT_SLACK,
                sent_at__gte=due_from,
            ),
        )
    )
    # Fatigue spans every programme: a send (last_surveyed_at), an answer from any channel
    # (last_responded_at), or an invitation of another programme already on its way.
    rested = at - timedelta(days=fatigue_days)
    rules.append(
        rule(
            SkipReason.FATIGUED,
            contact=Q(last_surveyed_at__gte=rested) | Q(last_responded_at__gte=rested),
            invitations=Q(state__in=OPEN_STATES),
        )
    )
    if programme.account_cap:
        rules.append(
            rule(
                SkipReason.ACCOUNT_CAP,
                # Correlated: asking about one contact (a touchpoint, "why not Ann?") or
                # recording the first skips reads one account, not every account. The
                # planner's pick counts places for all accounts at once instead.
                contact=Q(
                    GreaterThanOrEqual(
                        account_used(organization, programme, at), programme.account_cap
                    )
                ),
            )
        )
    return rules


def any_of(organization: Organization, rules: list[Exclusion]) -> Q:
    """Whether any of the rules excludes the contact, with one `IN (SELECT …)` over
    invitations for all of them (one hash probe a contact instead of one a rule)."""
    parts = [rule.contact for rule in rules if rule.contact is not None]
    invitations = [rule.invitations for rule in rules if rule.invitations is not None]
    if invitations:
        parts.append(_invited(organization, reduce(operator.or_, invitations)))
    return reduce(operator.or_, parts) if parts else Q(pk__in=[])


def reason_case(rules: list[Exclusion]) -> Case:
    """The first matching reason as a CASE expression, NULL when none matches."""
    whens = [When(rule.condition, then=Value(str(rule.reason))) for rule in rules]
    return Case(*whens, default=Value(None), output_field=CharField())


def in_segment(organization: Organization, programme: Programme) -> QuerySet[Contact]:
    if programme.segment_id is None:
        return contacts_of(organization)
    return contacts_in_segment(organization, programme.segment)


def skip_reasons(
    *,
    organization: Organization,
    programme: Programme,
    at: datetime | None = None,
    contacts: QuerySet[Contact] | None = None,
    fatigue_days: int | None = None,
) -> QuerySet[Contact]:
    """The programme's segment (narrowed to `contacts` if given), each contact annotated
    with `skip_reason`: the first reason it may not be asked at `at`, or None."""
    at = at or now()
    rules = exclusions(
        organization=organization, programme=programme, at=at, fatigue_days=fatigue_days
    )
    queryset = in_segment(organization, programme)
    if contacts is not None:
        queryset = queryset.filter(pk__in=contacts.values("pk"))
    return queryset.annotate(skip_reason=reason_case(rules))


def eligible_contacts(
    *,
    organization: Organization,
    programme: Programme,
    at: datetime | None = None,
    fatigue_days: int | None = None,
) -> QuerySet[Contact]:
    """The contacts the programme may ask at `at`."""
    return skip_reasons(
        organization=organization, programme=programme, at=at, fatigue_days=fatigue_days
    ).filter(skip_reason=None)


def contact_skip_reason(
    *,
    organization: Organization,
    programme: Programme,
    contact: Contact,
    at: datetime | None = None,
) -> str | None:
    """Why this one contact may not be asked at `at` (NOT_IN_SEGMENT when the programme is
    not for them), or None when it may."""
    found = (
        skip_reasons(
            organization=organization,
            programme=programme,
            at=at,
            contacts=Contact.objects.filter(organization=organization, pk=contact.pk),
        )
        .values_list("skip_reason", flat=True)
        .first()
    )
    if found is None and not in_segment(organization, programme).filter(pk=contact.pk).exists():
        return NOT_IN_SEGMENT
    return found


def unblocked_count(
    *,
    organization: Organization,
    programme: Programme,
    at: datetime | None = None,
    fatigue_days: int | None = None,
) -> int:
    """How many contacts the programme could ask at `at`, the account cap aside (it decides
    which contacts of an account go first, not how many are waiting): a count over the whole
    segment, with one hash probe a contact (see `any_of`)."""
    at = at or now()
    rules = [
        rule
        for rule in exclusions(
            organization=organization, programme=programme, at=at, fatigue_days=fatigue_days
        )
        if rule.reason != SkipReason.ACCOUNT_CAP
    ]
    return in_segment(organization, programme).exclude(any_of(organization, rules)).count()


def cycle_population(
    *, organization: Organization, programme: Programme, at: datetime | None = None
) -> int:
    """Contacts of the segment the cadence works through in one cycle: all but those held
    back by a standing reason (suppressed, no email, churned, too new). The drip spreads
    them over every_days, so each is asked once per cycle; counting only today's eligible
    contacts instead would drain the pool geometrically and never finish a cycle."""
    at = at or now()
    rules = exclusions(organization=organization, programme=programme, at=at, fatigue_days=0)
    standing = [rule for rule in rules if rule.reason in STANDING]
    return in_segment(organization, programme).exclude(any_of(organization, standing)).count()


# --- Coverage: does the segment reach the unhappy and the valuable? ------------------------


@dataclass
class Coverage:
    accounts: int = 0
    accounts_covered: int = 0
    arr: float = 0.0
    arr_covered: float = 0.0
    low_health: int = 0
    low_health_covered: int = 0
    warnings: list[str] = field(default_factory=list)

    @staticmethod
    def _share(part, whole) -> float | None:
        return part / whole if whole else None

    @property
    def account_share(self) -> float | None:
        return self._share(self.accounts_covered, self.accounts)

    @property
    def arr_share(self) -> float | None:
        return self._share(self.arr_covered, self.arr)

    @property
    def low_health_share(self) -> float | None:
        return self._share(self.low_health_covered, self.low_health)


def _percent(share: float) -> str:
    return f"{math.floor(share * 100 + 0.5)}%"


HEALTH_FIELDS = {"health_score", "last_score"}


def coverage(organization: Organization, programme: Programme) -> Coverage:
    """What share of the (not churned) accounts, of their ARR and of the low-health accounts
    the programme can reach: an account counts when at least one of its contacts is in the
    segment and not held back by a standing reason. Warns when low-health accounts or ARR
    are reached much less than accounts overall, and when the segment filters on health or
    scores."""
    reachable = (
        in_segment(organization, programme)
        .annotate(
            skip_reason=reason_case(
                [
                    rule
                    for rule in exclusions(
                        organization=organization, programme=programme, at=now(), fatigue_days=0
                    )
                    if rule.reason in STANDING
                ]
            )
        )
        .filter(skip_reason=None, account_id__isnull=False)
        .values("account_id")
    )
    covered = Q(pk__in=reachable)
    low = Q(health_score__lt=LOW_HEALTH)
    with roomy_sql():
        totals = (
            Account.objects.filter(organization=organization, churned_at__isnull=True)
            .exclude(lifecycle_stage=LifecycleStage.CHURNED)
            .aggregate(
                n_accounts=Count("id"),
                n_accounts_covered=Count("id", filter=covered),
                sum_arr=Sum("arr"),
                sum_arr_covered=Sum("arr", filter=covered),
                n_low_health=Count("id", filter=low),
                n_low_health_covered=Count("id", filter=low & covered),
            )
        )
    report = Coverage(
        accounts=totals["n_accounts"],
        accounts_covered=totals["n_accounts_covered"],
        arr=float(totals["sum_arr"] or 0),
        arr_covered=float(totals["sum_arr_covered"] or 0),
        low_health=totals["n_low_health"],
        low_health_covered=totals["n_low_health_covered"],
    )
    overall = report.account_share
    if overall:
        if report.low_health_share is not None and (
            report.low_health_share < COVERAGE_RATIO * overall
        ):
            report.warnings.append(
                f"This programme reaches {_percent(report.low_health_share)} of low-health "
                f"accounts (health below {LOW_HEALTH}) but {_percent(overall)} of all "
                "accounts: unhappy customers would be under-sampled and the score would "
                "look better than it is."
            )
        if report.arr_share is not None and report.arr_share < COVERAGE_RATIO * overall:
            report.warnings.append(
                f"This programme reaches {_percent(report.arr_share)} of ARR but "
                f"{_percent(overall)} of accounts: the customers who matter most to revenue "
                "are under-represented."
            )
    if programme.segment_id is not None:
        fields = {c.get("field") for c in (programme.segment.rules or {}).get("conditions", [])}
        if fields & HEALTH_FIELDS:
            report.warnings.append(
                "The segment filters on health or past scores: the answers it collects cannot "
                "stand for all customers."
            )
    return report

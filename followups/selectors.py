"""Reads for follow-ups: the queue (tabs, filters, counts), a follow-up's page and the
playbook settings. `get_<thing>_for(organization, id)` answers 404 for another tenant's row.

The queue runs a fixed number of queries whatever the page size: rows come with their
response, account, contact and assignee in one query, and the tab counts in one aggregate.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.timezone import now

from accounts.models import Segment
from accounts.selectors import accounts_in_segment
from followups import drafts
from followups.models import (
    OPEN_STATUSES,
    Activity,
    AssignmentRule,
    FollowUp,
    MemberPause,
    Playbook,
    PlaybookTemplate,
    Status,
)
from nps_platform.models import Membership, Organization, Role, User
from nps_platform.params import whole_number
from responses.models import Category, Response, ResponseTheme

# --- Lookups ---------------------------------------------------------------------------------


def followups_of(organization: Organization) -> QuerySet[FollowUp]:
    return FollowUp.objects.filter(organization=organization).select_related(
        "response", "account", "contact", "assignee"
    )


def get_followup_for(organization: Organization, followup_id: int) -> FollowUp:
    return get_object_or_404(
        FollowUp.objects.filter(organization=organization).select_related(
            "response", "account__owner", "contact", "assignee"
        ),
        pk=followup_id,
    )


def activities_of(organization: Organization, followup: FollowUp) -> list[Activity]:
    """The activity log, oldest first, with who did each step."""
    return list(
        Activity.objects.filter(organization=organization, followup=followup)
        .select_related("actor")
        .order_by("created_at", "id")
    )


def workers_of(organization: Organization) -> list[Membership]:
    """The people a follow-up can be assigned to: CS managers and admins, by name."""
    return list(
        Membership.objects.filter(organization=organization, role__in=[Role.CS_MANAGER, Role.ADMIN])
        .select_related("user")
        .order_by("user__name", "user__email")
    )


def members_of(organization: Organization) -> list[Membership]:
    return list(
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__name", "user__email")
    )


def get_worker_for(organization: Organization, user_id) -> User | None:
    """A CS manager or admin of this organization by user id; None for anyone else."""
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    membership = (
        Membership.objects.filter(
            organization=organization,
            user_id=user_id,
            role__in=[Role.CS_MANAGER, Role.ADMIN],
        )
        .select_related("user")
        .first()
    )
    return membership.user if membership else None


def get_member_for(organization: Organization, user_id) -> User | None:
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    membership = (
        Membership.objects.filter(organization=organization, user_id=user_id)
        .select_related("user")
        .first()
    )
    return membership.user if membership else None


# --- The queue -------------------------------------------------------------------------------

TABS = {
    "mine": "Mine",
    "unassigned": "Unassigned",
    "overdue": "Overdue",
    "all": "All open",
    "closed": "Closed",
}
DEFAULT_TAB = "mine"


@dataclass
class QueueFilters:
    tab: str = DEFAULT_TAB
    category: str = ""
    playbook: str = ""
    segment: Segment | None = None
    owner: str | int | None = None  # a user id, or "none" for unassigned
    theme: str = ""

    @property
    def is_filtered(self) -> bool:
        return bool(
            self.category or self.playbook or self.segment or self.owner is not None or self.theme
        )


def _param(params, name: str) -> str:
    value = params.get(name, "")
    # NUL: text PostgreSQL cannot hold, typed or pasted into a query string.
    return value.replace("\x00", "").strip() if isinstance(value, str) else ""


def queue_filters(organization: Organization, params, *, segment_list=None) -> QueueFilters:
    """The queue's query string, read leniently: an unknown value is ignored, never a 500."""
    filters = QueueFilters()
    if (tab := _param(params, "tab")) in TABS:
        filters.tab = tab
    if (category := _param(params, "category")) in Category.values:
        filters.category = category
    if (playbook := _param(params, "playbook")) in Playbook.values:
        filters.playbook = playbook
    if (segment_id := whole_number(_param(params, "segment"))) is not None:
        segments = (
            {s.pk: s for s in segment_list}
            if segment_list is not None
            else {s.pk: s for s in Segment.objects.filter(organization=organization, pk=segment_id)}
        )
        filters.segment = segments.get(segment_id)
    owner = _param(params, "owner")
    if owner == "none":
        filters.owner = "none"
    elif (owner_id := whole_number(owner)) is not None:
        filters.owner = owner_id
    filters.theme = _param(params, "theme")[:50]
    return filters


def _filtered(organization: Organization, filters: QueueFilters) -> QuerySet[FollowUp]:
    followups = followups_of(organization)
    if filters.category:
        followups = followups.filter(response__category=filters.category)
    if filters.playbook:
        followups = followups.filter(playbook=filters.playbook)
    if filters.segment is not None:
        followups = followups.filter(
            account__in=accounts_in_segment(organization, filters.segment).values("pk")
        )
    if filters.owner == "none":
        followups = followups.filter(assignee__isnull=True)
    elif filters.owner is not None:
        followups = followups.filter(assignee_id=filters.owner)
    if filters.theme:
        followups = followups.filter(
            Exists(
                ResponseTheme.objects.filter(
                    organization=organization,
                    response=OuterRef("response_id"),
                    theme=filters.theme,
                )
            )
        )
    return followups


def _tab_q(tab: str, user: User, moment: datetime) -> Q:
    open_ = Q(status__in=OPEN_STATUSES)
    return {
        "mine": open_ & Q(assignee=user),
        "unassigned": open_ & Q(assignee__isnull=True),
        "overdue": open_ & Q(due_at__lt=moment),
        "all": open_,
        "closed": Q(status=Status.CLOSED),
    }[tab]


def queue(
    organization: Organization, filters: QueueFilters, *, user: User, moment: datetime | None = None
) -> QuerySet[FollowUp]:
    """The follow-ups of a tab under the filters: highest priority first, then the soonest
    due; the closed tab shows the most recently closed first."""
    moment = moment or now()
    followups = _filtered(organization, filters).filter(_tab_q(filters.tab, user, moment))
    if filters.tab == "closed":
        return followups.order_by("-closed_at", "-id")
    return followups.order_by("-priority", "due_at", "id")


def tab_counts(
    organization: Organization, filters: QueueFilters, *, user: User, moment: datetime | None = None
) -> dict[str, int]:
    """Every tab's count under the same filters, in one aggregate query."""
    moment = moment or now()
    return _filtered(organization, filters).aggregate(
        **{tab: Count("pk", filter=_tab_q(tab, user, moment)) for tab in TABS}
    )


@dataclass(frozen=True)
class SlaBadge:
    text: str  # "due in 5 h", "overdue 2 d", "closed"
    state: str  # "ok", "soon", "overdue", "closed"


def _span(seconds: float) -> str:
    """A duration in the coarsest unit that keeps it readable: "40 min", "5 h", "3 d"."""
    seconds = abs(seconds)
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    hours = round(seconds / 3600)
    if hours < 48:
        return f"{hours} h"
    return f"{round(seconds / 86400)} d"


SOON = timedelta(hours=4)


def sla_badge(followup: FollowUp, moment: datetime | None = None) -> SlaBadge:
    """The SLA countdown of a follow-up, as the queue and its page show it."""
    moment = moment or now()
    if followup.status == Status.CLOSED:
        return SlaBadge("closed", "closed")
    left = (followup.due_at - moment).total_seconds()
    if left < 0:
        return SlaBadge(f"overdue {_span(left)}", "overdue")
    return SlaBadge(f"due in {_span(left)}", "soon" if left <= SOON.total_seconds() else "ok")


def top_reason(followup: FollowUp) -> dict | None:
    """The reason that sets this follow-up apart: the biggest one besides its category
    (which the score badge already shows), or the category when it is the only one."""
    reasons = followup.priority_reasons or []
    if not reasons:
        return None
    categories = set(Category.labels)
    specific = [r for r in reasons if r.get("reason") not in categories]
    return max(specific or reasons, key=lambda r: r.get("points", 0))


def reasons_title(followup: FollowUp) -> str:
    reasons = sorted(followup.priority_reasons or [], key=lambda r: -r.get("points", 0))
    return "; ".join(f"{r['reason']} (+{r['points']})" for r in reasons)


# --- A follow-up's page ----------------------------------------------------------------------


def account_responses(organization: Organization, account, *, limit: int = 40) -> list[Response]:
    """The account's answers, newest first, with who answered: its NPS history."""
    if account is None:
        return []
    return list(
        Response.objects.filter(organization=organization, account=account)
        .select_related("contact")
        .order_by("-submitted_at", "-id")[:limit]
    )


def other_contacts_latest(responses: list[Response], followup: FollowUp, *, limit: int = 8):
    """Each other contact's most recent answer, from the account's history."""
    seen, latest = set(), []
    for response in responses:
        if response.contact_id is None or response.contact_id == followup.contact_id:
            continue
        if response.contact_id in seen:
            continue
        seen.add(response.contact_id)
        latest.append(response)
        if len(latest) >= limit:
            break
    return latest


# --- Playbook settings -----------------------------------------------------------------------


def templates_of(organization: Organization) -> dict[str, PlaybookTemplate]:
    return {t.playbook: t for t in PlaybookTemplate.objects.filter(organization=organization).all()}


def rules_of(organization: Organization) -> list[AssignmentRule]:
    return list(
        AssignmentRule.objects.filter(organization=organization)
        .select_related("segment", "assignee")
        .order_by("order", "id")
    )


def get_rule_for(organization: Organization, rule_id: int) -> AssignmentRule:
    return get_object_or_404(AssignmentRule.objects.filter(organization=organization), pk=rule_id)


def pauses_of(organization: Organization) -> list[MemberPause]:
    return list(
        MemberPause.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__name", "user__email")
    )


def get_pause_for(organization: Organization, pause_id: int) -> MemberPause:
    return get_object_or_404(
        MemberPause.objects.filter(organization=organization).select_related("user"), pk=pause_id
    )


def preview_response(organization: Organization, playbook: str) -> tuple[Response | None, object]:
    """A real recent answer the playbook is for, and who would sign its draft: the newest
    follow-up of that playbook and its assignee, or else the newest answer of its category
    (without a comment for "ask why") and its account's owner."""
    followup = (
        FollowUp.objects.filter(organization=organization, playbook=playbook)
        .select_related("response__account", "response__contact", "assignee")
        .order_by("-created_at", "-id")
        .first()
    )
    if followup is not None:
        return followup.response, followup.assignee
    responses = Response.objects.filter(organization=organization).select_related(
        "account__owner", "contact"
    )
    if playbook == Playbook.ASK_WHY:
        responses = responses.filter(has_comment=False)
    else:
        category = {
            Playbook.RECOVER: Category.DETRACTOR,
            Playbook.NUDGE: Category.PASSIVE,
            Playbook.THANK: Category.PROMOTER,
        }[playbook]
        responses = responses.filter(category=category, has_comment=True)
    response = responses.order_by("-submitted_at", "-id").first()
    return response, (response.account.owner if response and response.account else None)


# A believable customer for the preview when the organization has no answer to show yet.
SAMPLES = {
    Playbook.RECOVER: (3, "Exports keep failing and support is slow.", ["bugs", "support"]),
    Playbook.NUDGE: (7, "Good product, but the pricing is hard to justify.", ["pricing"]),
    Playbook.THANK: (10, "Smooth onboarding and great support.", ["onboarding", "support"]),
    Playbook.ASK_WHY: (5, "", []),
}


def preview_context(organization: Organization, playbook: str, *, owner=None):
    """(the context a draft of this playbook is rendered over, the real response it comes
    from or None for the sample). `owner` signs the sample."""
    response, signer = preview_response(organization, playbook)
    if response is not None:
        context = drafts.draft_context(
            organization=organization, response=response, owner=signer or owner
        )
        return context, response
    score, comment, themes = SAMPLES[playbook]
    sample = Response(
        organization=organization,
        score=score,
        comment=comment,
        has_comment=bool(comment),
        category=Category.DETRACTOR
        if score <= 6
        else Category.PASSIVE
        if score <= 8
        else "promoter",
        danger_zone=score <= 3,
        themes=themes,
        submitted_at=now(),
    )
    context = drafts.draft_context(organization=organization, response=sample, owner=owner)
    context.update(
        previous_score=9 if score < 9 else None,
        score_change=f"your score went from 9 to {score}" if score < 9 else "",
        contact={
            "first_name": "Jordan",
            "name": "Jordan Sample",
            "email": "jordan@example.com",
            "title": "Head of Operations",
        },
        account={
            "name": "Sample Co",
            "plan": "growth",
            "arr": 48000,
            "arr_tier": drafts.arr_tier(48000),
            "customer_since": "March 2023",
            "tenure_days": 800,
            "renewal_in_days": 60,
        },
        tickets={"count": 2, "open": 1, "subjects": "“Export fails on large files”"},
        usage={"direction": "falling", "change_percent": -18.0},
    )
    return context, None


def flatten_variables(context: dict, prefix: str = "") -> list[tuple[str, object]]:
    """The variables a template may use, dotted, with their value in this context."""
    names = []
    for key, value in context.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            names.extend(flatten_variables(value, f"{name}."))
        else:
            names.append((name, value))
    return names

"""Reads for surveys: lists, lookups (`get_<thing>_for` answers 404 for another tenant's
row), the send log, and the programme page's forecast, coverage and "why not surveyed"."""

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.timezone import now

from accounts.models import Contact
from nps_platform.models import Organization
from responses.references import Reference, ReferencesChecked
from surveys import eligibility, scheduler
from surveys.models import Invitation, Programme, SkipReason, Survey, TouchpointEvent


def surveys_of(organization: Organization) -> QuerySet[Survey]:
    return Survey.objects.filter(organization=organization).annotate(
        programme_count=Count("programmes")
    )


def programmes_of(organization: Organization) -> QuerySet[Programme]:
    return Programme.objects.filter(organization=organization).select_related("survey", "segment")


def get_survey_for(organization: Organization, survey_id) -> Survey:
    return get_object_or_404(Survey, organization=organization, pk=survey_id)


def get_programme_for(organization: Organization, programme_id) -> Programme:
    return get_object_or_404(programmes_of(organization), pk=programme_id)


def touchpoints_of(organization: Organization) -> QuerySet[TouchpointEvent]:
    return TouchpointEvent.objects.filter(organization=organization).select_related(
        "contact", "invitation"
    )


def invitations_of(
    organization: Organization,
    *,
    programme=None,
    survey=None,
    contact=None,
    account=None,
    state: str | list[str] | None = None,
    skip_reason: str | None = None,
    trigger: str | None = None,
    email: str | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
) -> QuerySet[Invitation]:
    """The send log: invitations newest planned first, with every filter optional.
    `programme`, `survey`, `contact` and `account` take an object or an id; `email` matches
    part of the contact's address; since/until bound planned_for (a date includes its day)."""
    queryset = Invitation.objects.filter(organization=organization).select_related(
        "programme", "survey", "contact", "account"
    )
    for name, value in (
        ("programme", programme),
        ("survey", survey),
        ("contact", contact),
        ("account", account),
    ):
        if value not in (None, ""):
            queryset = queryset.filter(**{f"{name}_id": getattr(value, "pk", value)})
    if state:
        queryset = queryset.filter(state__in=[state] if isinstance(state, str) else state)
    if skip_reason:
        queryset = queryset.filter(skip_reason=skip_reason)
    if trigger:
        queryset = queryset.filter(trigger=trigger)
    if email:
        queryset = queryset.filter(contact__email__icontains=email.strip())
    if since:
        lookup = "planned_for__date__gte" if not isinstance(since, datetime) else "planned_for__gte"
        queryset = queryset.filter(**{lookup: since})
    if until:
        lookup = "planned_for__date__lte" if not isinstance(until, datetime) else "planned_for__lt"
        queryset = queryset.filter(**{lookup: until})
    return queryset.order_by("-planned_for", "-pk")


def skip_counts(organization: Organization, *, programme=None, since=None) -> dict[str, int]:
    """Recorded skips by reason, for the send log's summary."""
    queryset = invitations_of(organization, programme=programme, since=since).filter(
        ~Q(skip_reason="")
    )
    rows = queryset.order_by().values("skip_reason").annotate(n=Count("id"))
    return {row["skip_reason"]: row["n"] for row in rows}


@dataclass
class ProgrammeVerdict:
    programme: Programme
    reason: str | None  # a SkipReason, eligibility.NOT_DUE or NOT_IN_SEGMENT; None: eligible

    @property
    def label(self) -> str:
        if self.reason is None:
            return "Eligible: will be asked when the drip reaches them."
        if self.reason == eligibility.NOT_DUE:
            return "Asked by this programme within its cycle."
        if self.reason == eligibility.NOT_IN_SEGMENT:
            return "Not in this programme's segment."
        return SkipReason(self.reason).label


def why_not_surveyed(
    organization: Organization, contact: Contact, *, at: datetime | None = None
) -> list[ProgrammeVerdict]:
    """ "Why wasn't Ann surveyed?": each active programme's verdict on the contact now (the
    recorded skips are in `invitations_of(organization, contact=…)`)."""
    at = at or now()
    return [
        ProgrammeVerdict(
            programme=programme,
            reason=eligibility.contact_skip_reason(
                organization=organization, programme=programme, contact=contact, at=at
            ),
        )
        for programme in programmes_of(organization).filter(is_active=True)
    ]


def programme_forecast(
    organization: Organization, programme: Programme, *, days: int = 14
) -> scheduler.Forecast:
    return scheduler.programme_forecast(organization=organization, programme=programme, days=days)


def programme_coverage(organization: Organization, programme: Programme) -> eligibility.Coverage:
    return eligibility.coverage(organization, programme)


def response_references_check(
    *, organization: Organization, references: dict[int, Reference]
) -> ReferencesChecked:
    """The surveys' side of responses.references (registered in apps.py): an item's survey
    must be one of the organization's, its invitation one of the organization's sent to the
    item's contact, and both must agree; an item naming only its invitation answers the
    invitation's survey. One query for the invitations and one for the surveys, each only
    when some item names one; another tenant's id reads as unknown."""
    invitation_ids = {r.invitation_id for r in references.values() if r.invitation_id}
    invitations: dict[int, tuple[int | None, int]] = {}  # id → (contact id, survey id)
    if invitation_ids:
        rows = Invitation.objects.filter(organization=organization, pk__in=invitation_ids)
        invitations = {pk: (c, s) for pk, c, s in rows.values_list("pk", "contact_id", "survey_id")}
    # A survey named with its own invitation's survey needs no lookup: that one is ours.
    survey_ids = {
        r.survey_id
        for r in references.values()
        if r.survey_id and invitations.get(r.invitation_id, (None, None))[1] != r.survey_id
    }
    surveys: set[int] = set()
    if survey_ids:
        rows = Survey.objects.filter(organization=organization, pk__in=survey_ids)
        surveys = set(rows.values_list("pk", flat=True))
    checked = ReferencesChecked()
    for index, reference in references.items():
        errors = {}
        invitation = invitations.get(reference.invitation_id)
        if reference.invitation_id and invitation is None:
            errors["invitation_id"] = [f"No invitation has the id {reference.invitation_id}."]
        elif invitation and invitation[0] != reference.contact_id:
            errors["invitation_id"] = [
                f"Invitation {reference.invitation_id} was sent to another contact, not to "
                "the one this response names."
            ]
        if not reference.survey_id:
            if invitation and not errors:
                checked.survey_ids[index] = invitation[1]
        elif invitation and invitation[1] == reference.survey_id:
            pass  # the invitation's survey is the organization's
        elif reference.survey_id not in surveys:
            errors["survey_id"] = [f"No survey has the id {reference.survey_id}."]
        elif invitation:
            errors["survey_id"] = [
                f"Invitation {reference.invitation_id} is for survey {invitation[1]}, "
                f"not survey {reference.survey_id}."
            ]
        if errors:
            checked.errors[index] = errors
    return checked

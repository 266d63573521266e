"""Reads behind the Delighted-compatible API, each one query (plus a prefetch when notes are
expanded)."""

from django.db.models import Min, OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404

from accounts.models import Contact, SuppressionReason
from accounts.selectors import contacts_in_segment, get_segment_for
from compat.models import AutopilotMembership
from nps_platform.params import whole_number
from responses.models import Response, ResponseNote
from surveys.models import Invitation, InvitationState


def _next_planned(organization) -> Subquery:
    return Subquery(
        Invitation.objects.filter(
            organization=organization, contact=OuterRef("pk"), state=InvitationState.PLANNED
        )
        .values("contact")
        .annotate(first=Min("planned_for"))
        .values("first")[:1]
    )


def people_of(organization) -> QuerySet[Contact]:
    """Every contact, in creation order, with its next planned survey."""
    return (
        Contact.objects.filter(organization=organization)
        .annotate(next_survey_at=_next_planned(organization))
        .order_by("id")
    )


def survey_responses_of(organization, *, notes: bool = False) -> QuerySet[Response]:
    responses = Response.objects.filter(organization=organization).select_related("contact")
    if notes:
        responses = responses.prefetch_related(
            Prefetch(
                "notes",
                queryset=ResponseNote.objects.filter(organization=organization).select_related(
                    "author"
                ),
            )
        )
    return responses


def get_survey_response_for(organization, response_id: str, *, notes: bool = False) -> Response:
    pk = whole_number(str(response_id))
    if pk is None:
        raise Http404
    return get_object_or_404(survey_responses_of(organization, notes=notes), pk=pk)


def in_trend(organization, responses: QuerySet[Response], trend_id: int) -> QuerySet[Response]:
    """A Delighted trend is a saved filter of people: here, a segment."""
    segment = get_segment_for(organization, trend_id)
    return responses.filter(contact__in=contacts_in_segment(organization, segment).values("pk"))


def suppressed_of(organization, reason: str) -> QuerySet[Contact]:
    return Contact.objects.filter(organization=organization, suppressed_reason=reason).order_by(
        "suppressed_at", "id"
    )


def unsubscribed_of(organization) -> QuerySet[Contact]:
    return suppressed_of(organization, SuppressionReason.UNSUBSCRIBED)


def bounced_of(organization) -> QuerySet[Contact]:
    return suppressed_of(organization, SuppressionReason.BOUNCED)


def memberships_of(organization, programme) -> QuerySet[AutopilotMembership]:
    return (
        AutopilotMembership.objects.filter(organization=organization, programme=programme)
        .select_related("contact")
        .annotate(
            next_survey_at=Subquery(
                Invitation.objects.filter(
                    organization=organization,
                    programme=programme,
                    contact=OuterRef("contact"),
                    state=InvitationState.PLANNED,
                )
                .order_by("planned_for")
                .values("planned_for")[:1]
            ),
            next_invitation_id=Subquery(
                Invitation.objects.filter(
                    organization=organization,
                    programme=programme,
                    contact=OuterRef("contact"),
                    state=InvitationState.PLANNED,
                )
                .order_by("planned_for")
                .values("pk")[:1]
            ),
        )
        .order_by("id")
    )


def segment_exists(organization, segment_id: int) -> bool:
    try:
        get_segment_for(organization, segment_id)
    except Http404:
        return False
    return True

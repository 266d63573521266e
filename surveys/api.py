"""Surveys REST API: touchpoint events that may trigger a survey, and the send log.

Thin views: the input serializer validates, surveys.scheduler.touchpoint_record decides and
writes, selectors read; the output serializers describe what goes out.
"""

import re
from datetime import timedelta

import django_filters as filters
from django.utils.timezone import now
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts.filters import IntegerFilter
from accounts.models import Contact
from nps_platform.api_errors import error_body
from surveys import scheduler, selectors
from surveys.models import Invitation, InvitationState, TouchpointEvent

_EVENT_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
FUTURE_SLACK = timedelta(minutes=5)  # clock skew allowed on occurred_at


# --- Serializers -----------------------------------------------------------------------------


class SurveysApiErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A code: invalid, not_authenticated, …")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field name.",
    )


def _no_nul(value, path: str = "") -> str | None:
    """Where a NUL character hides in a JSON value (PostgreSQL cannot store one)."""
    if isinstance(value, str):
        return path or "value" if "\x00" in value else None
    if isinstance(value, dict):
        for key, child in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            if found := _no_nul(child, where):
                return found
    if isinstance(value, list):
        for index, child in enumerate(value):
            if found := _no_nul(child, f"{path}[{index}]"):
                return found
    return None


class EventInputSerializer(serializers.Serializer):
    event = serializers.CharField(
        max_length=100, help_text="The event's name, e.g. onboarding_completed."
    )
    email = serializers.EmailField(
        required=False, help_text="The contact (or contact_external_id)."
    )
    contact_external_id = serializers.CharField(
        max_length=200, required=False, help_text="The contact (or email)."
    )
    occurred_at = serializers.DateTimeField(
        required=False, help_text="When it happened (ISO 8601); default now. Not in the future."
    )
    properties = serializers.DictField(required=False, help_text="Anything worth keeping.")
    external_id = serializers.CharField(
        max_length=200,
        required=False,
        help_text="Your id for the event: sending it again changes nothing (200).",
    )

    def validate_event(self, value):
        value = value.strip()
        if not _EVENT_NAME.fullmatch(value):
            raise serializers.ValidationError(
                "Name the event in letters, digits, _ . : or -, for example onboarding_completed."
            )
        return value

    def validate_occurred_at(self, value):
        if value > now() + FUTURE_SLACK:
            raise serializers.ValidationError("occurred_at is in the future.")
        return value

    def validate_properties(self, value):
        if where := _no_nul(value):
            raise serializers.ValidationError(
                f"{where} contains a NUL character (\\u0000), which cannot be stored."
            )
        return value

    def validate(self, attrs):
        if not attrs.get("email") and not attrs.get("contact_external_id"):
            raise serializers.ValidationError(
                {"email": ["Name the contact: send email or contact_external_id."]}
            )
        return attrs


class PlannedInvitationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    planned_for = serializers.DateTimeField()


class EventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event = serializers.CharField(source="name")
    contact_id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    external_id = serializers.CharField(allow_null=True)
    properties = serializers.DictField()
    outcome = serializers.CharField(
        help_text="Per triggered programme: when the survey is scheduled, or why not."
    )
    invitation = PlannedInvitationSerializer(
        allow_null=True, help_text="The invitation planned, if any."
    )
    created_at = serializers.DateTimeField()


class InvitationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    programme_id = serializers.IntegerField(allow_null=True)
    programme_name = serializers.CharField(source="programme.name", allow_null=True)
    survey_id = serializers.IntegerField()
    contact_id = serializers.IntegerField(allow_null=True)
    contact_email = serializers.EmailField(source="contact.email", allow_null=True)
    account_id = serializers.IntegerField(allow_null=True)
    channel = serializers.CharField(help_text="email, link or in_app.")
    state = serializers.ChoiceField(choices=InvitationState.choices)
    skip_reason = serializers.CharField(help_text="Why it was skipped or suppressed, or empty.")
    trigger = serializers.CharField(help_text="The event that asked for it, or empty.")
    planned_for = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    opened_at = serializers.DateTimeField(allow_null=True)
    answered_at = serializers.DateTimeField(allow_null=True)
    reminder_sent_at = serializers.DateTimeField(allow_null=True)
    response_id = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()


ERROR_RESPONSES = {
    400: OpenApiResponse(SurveysApiErrorSerializer, description="Not valid."),
    401: OpenApiResponse(SurveysApiErrorSerializer, description="No or a bad API key."),
}


# --- Events ------------------------------------------------------------------------------------


class EventApi(GenericAPIView):
    filter_backends = []
    pagination_class = None
    serializer_class = EventInputSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TouchpointEvent.objects.none()
        return selectors.touchpoints_of(self.request.auth.organization)

    @extend_schema(
        summary="Record a touchpoint event",
        description=(
            "Tells NPS Loop that something happened to a contact (for example "
            "`onboarding_completed`, `renewal_upcoming`, `ticket_solved`). Each active "
            "programme whose triggers name the event schedules a survey its delay later, "
            "inside its send window, if the contact is eligible then; `outcome` says when, or "
            "why not (fatigue, suppression, …).\n\n"
            "201 when recorded; 200 when an event with the same `external_id` was recorded "
            "before (nothing changes); 400 when invalid or the contact is unknown."
        ),
        request=EventInputSerializer,
        responses={
            201: OpenApiResponse(EventOutputSerializer, description="Recorded."),
            200: OpenApiResponse(EventOutputSerializer, description="Recorded before."),
            **ERROR_RESPONSES,
        },
        tags=["events"],
    )
    def post(self, request):
        organization = request.auth.organization
        if not isinstance(request.data, dict):
            return Response(
                error_body("invalid", "Send one JSON object."), status=status.HTTP_400_BAD_REQUEST
            )
        data = EventInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        external_id = values.get("external_id") or None
        if external_id:
            existing = self._event(organization, external_id=external_id)
            if existing is not None:
                return Response(EventOutputSerializer(existing).data, status=status.HTTP_200_OK)
        contact, field_name, value = self._contact(organization, values)
        if contact is None:
            message = f"No contact has the {field_name} “{value}”."
            return Response(
                error_body("invalid", message, {field_name: [message]}),
                status=status.HTTP_400_BAD_REQUEST,
            )
        event = scheduler.touchpoint_record(
            organization=organization,
            contact=contact,
            name=values["event"],
            occurred_at=values.get("occurred_at"),
            properties=values.get("properties") or {},
            external_id=external_id,
        )
        event = self._event(organization, pk=event.pk)
        return Response(EventOutputSerializer(event).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _event(organization, **lookup) -> TouchpointEvent | None:
        return selectors.touchpoints_of(organization).filter(**lookup).first()

    @staticmethod
    def _contact(organization, values):
        contacts = Contact.objects.filter(organization=organization).order_by("pk")
        if values.get("contact_external_id"):
            value = values["contact_external_id"]
            return contacts.filter(external_id=value).first(), "contact_external_id", value
        value = values["email"]
        return contacts.filter(email__iexact=value).first(), "email", value


# --- The send log ------------------------------------------------------------------------------


class InvitationFilter(filters.FilterSet):
    email = filters.CharFilter(
        field_name="contact__email", lookup_expr="iexact", help_text="The contact's email."
    )
    programme = extend_schema_field({"type": "integer", "description": "A programme's id."})(
        IntegerFilter(field_name="programme_id", help_text="A programme's id.")
    )
    state = filters.ChoiceFilter(
        choices=InvitationState.choices,
        help_text="planned, sending, sent, delivered, opened, answered, bounced, failed, "
        "suppressed or skipped.",
    )
    since = filters.IsoDateTimeFilter(
        field_name="planned_for",
        lookup_expr="gte",
        help_text="Planned at or after this moment (ISO 8601).",
    )

    class Meta:
        model = Invitation
        fields = []


class InvitationListApi(GenericAPIView):
    filterset_class = InvitationFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Invitation.objects.none()
        return selectors.invitations_of(self.request.auth.organization)

    @extend_schema(
        summary="List invitations (the send log)",
        description="Every ask of a contact, with its state and, when skipped, the reason. "
        "Newest first; cursor-paginated (follow `next`).",
        responses={200: InvitationOutputSerializer(many=True), **ERROR_RESPONSES},
        tags=["invitations"],
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(InvitationOutputSerializer(page, many=True).data)

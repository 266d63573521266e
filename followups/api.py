"""Follow-ups REST API: list the queue, read one follow-up with its activity log, and work
it (status, assignee, outcome, a note) with the same rules as the page.

Thin views: the services own every rule (closing needs an outcome, who may be assigned,
what a status change clears); the serializers below describe what goes out and what may
come in. Nothing here sends email: a draft is sent by a person from the follow-up page, and
there is no field that sends, or turns on automatic sending, through the API.
"""

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import Cursor
from rest_framework.response import Response
from rest_framework.views import APIView

from followups import filters, selectors, services
from followups.models import ActivityKind, FollowUp, Outcome, Status
from nps_platform.api_pagination import CursorPagination
from nps_platform.models import Membership, Organization

# --- Output -----------------------------------------------------------------------------------


class FollowUpResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    score = serializers.IntegerField(help_text="0–10.")
    category = serializers.CharField(help_text="detractor (0–6), passive (7–8) or promoter (9–10).")
    danger_zone = serializers.BooleanField(help_text="A score of 0–3.")
    comment = serializers.CharField()
    themes = serializers.ListField(child=serializers.CharField(), help_text="Theme slugs.")


class FollowUpAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    name = serializers.CharField()
    arr = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        allow_null=True,
        help_text="In the organization's currency.",
    )


class FollowUpContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(allow_null=True)
    name = serializers.CharField()


class PriorityReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="e.g. “Danger zone (0–3)”.")
    points = serializers.IntegerField(help_text="What it adds to the priority.")


class FollowUpOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    response = FollowUpResponseSerializer()
    account = FollowUpAccountSerializer(allow_null=True)
    contact = FollowUpContactSerializer(allow_null=True)
    playbook = serializers.CharField(help_text="recover, nudge, thank or ask_why.")
    priority = serializers.IntegerField(help_text="0–100, higher first.")
    priority_reasons = PriorityReasonSerializer(
        many=True, help_text="Why it ranks where it does; the points add up to the priority."
    )
    status = serializers.CharField(help_text="new, in_progress, waiting or closed.")
    assignee = serializers.EmailField(
        source="assignee.email", allow_null=True, help_text="The assignee's email."
    )
    due_at = serializers.DateTimeField(help_text="From the playbook's SLA.")
    overdue = serializers.BooleanField(source="is_overdue", help_text="Open and past due_at.")
    draft_subject = serializers.CharField()
    draft_body = serializers.CharField()
    outcome = serializers.CharField(
        help_text="resolved, churn_risk, referral_given, review_left, no_response, "
        "not_reachable or other once closed; empty while open."
    )
    closing_notes = serializers.CharField()
    first_contact_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ActivityOutputSerializer(serializers.Serializer):
    kind = serializers.CharField(
        help_text="created, replanned, status, note, email, call, assigned, draft, escalated, "
        "closed or reply."
    )
    actor = serializers.EmailField(
        source="actor.email",
        allow_null=True,
        help_text="Who did it; null for the system or an API key.",
    )
    message = serializers.CharField()
    created_at = serializers.DateTimeField()


class FollowUpDetailOutputSerializer(FollowUpOutputSerializer):
    activities = ActivityOutputSerializer(
        many=True, source="activities_list", help_text="The activity log, oldest first."
    )


# Bound once: a serializer instance per object deep-copies every field. to_representation
# keeps no state, so requests may share it.
_DETAIL = FollowUpDetailOutputSerializer()


class FollowUpsApiErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A code: invalid, not_found, not_authenticated, …")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field name.",
    )


# --- Input ------------------------------------------------------------------------------------


class FollowUpChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=Status.choices,
        required=False,
        help_text="new, in_progress, waiting, or closed (with an `outcome`). Moving a closed "
        "follow-up back to an open status reopens it and clears its outcome.",
        error_messages={
            "invalid_choice": "Unknown status “{input}”: use new, in_progress, waiting or closed."
        },
    )
    outcome = serializers.ChoiceField(
        choices=Outcome.choices,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text='Required with status "closed", and only taken then.',
        error_messages={
            "invalid_choice": "Unknown outcome “{input}”: use " + ", ".join(Outcome.values) + "."
        },
    )
    closing_notes = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=5000,
        help_text='What happened, kept with the outcome; only with status "closed".',
    )
    assignee = serializers.EmailField(
        required=False,
        allow_null=True,
        help_text="A CS manager's or an admin's email in your organization; null unassigns.",
    )
    note = serializers.CharField(
        required=False,
        max_length=5000,
        help_text="Adds a note to the activity log (any status).",
    )


ALLOWED_FIELDS = frozenset(FollowUpChangeSerializer().fields)
UNKNOWN_FIELD = (
    "Unknown field: send status, outcome, closing_notes, assignee or note. The API never "
    "sends email; a person sends the draft from the follow-up page."
)
NOT_A_MEMBER = "Assign to a CS manager or an admin of this organization."

# --- Schema pieces ------------------------------------------------------------------------------

ERRORS = {
    400: OpenApiResponse(FollowUpsApiErrorSerializer, description="Not valid."),
    401: OpenApiResponse(FollowUpsApiErrorSerializer, description="No or a bad API key."),
}
NOT_FOUND = {404: OpenApiResponse(FollowUpsApiErrorSerializer, description="No such follow-up.")}


# --- Pagination ---------------------------------------------------------------------------------


class FollowUpCursorPagination(CursorPagination):
    """Keyset pages over (-priority, due_at, id).

    DRF's CursorPagination keys its cursor on the first ordering field only and skips ties
    with an offset capped at 1,000. Priorities repeat a lot (0–100 over thousands of
    follow-ups), so that would be slow and, past the cap, repeat rows. The cursor here holds
    all three values, so each page is one indexed range query whatever the ties.
    """

    ordering = ("-priority", "due_at", "id")
    SEPARATOR = "~"

    @staticmethod
    def _after(position, *, reverse: bool) -> Q:
        """Rows after `position` in the list order (before it when `reverse`)."""
        priority, due_at, pk = position
        if not reverse:
            return (
                Q(priority__lt=priority)
                | Q(priority=priority, due_at__gt=due_at)
                | Q(priority=priority, due_at=due_at, id__gt=pk)
            )
        return (
            Q(priority__gt=priority)
            | Q(priority=priority, due_at__lt=due_at)
            | Q(priority=priority, due_at=due_at, id__lt=pk)
        )

    def _encode_position(self, followup: FollowUp) -> str:
        return self.SEPARATOR.join(
            [str(followup.priority), followup.due_at.isoformat(), str(followup.pk)]
        )

    def _decode_position(self, text: str | None):
        try:
            priority, due_at, pk = (text or "").split(self.SEPARATOR)
            moment = datetime.fromisoformat(due_at)
            if moment.tzinfo is None:
                raise ValueError("naive")
            return int(priority), moment, int(pk)
        except ValueError:
            raise exceptions.NotFound(self.invalid_cursor_message) from None

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.cursor = self.decode_cursor(request)
        reverse = bool(self.cursor and self.cursor.reverse)
        if reverse:
            queryset = queryset.order_by("priority", "-due_at", "-id")
        else:
            queryset = queryset.order_by(*self.ordering)
        if self.cursor is not None:
            position = self._decode_position(self.cursor.position)
            queryset = queryset.filter(self._after(position, reverse=reverse))
        rows = list(queryset[: self.page_size + 1])
        more = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        if reverse:
            self.page.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, self.cursor is not None
        return self.page

    def get_next_link(self):
        if not self.has_next or not self.page:
            return None
        position = self._encode_position(self.page[-1])
        return self.encode_cursor(Cursor(offset=0, reverse=False, position=position))

    def get_previous_link(self):
        if not self.has_previous or not self.page:
            return None
        position = self._encode_position(self.page[0])
        return self.encode_cursor(Cursor(offset=0, reverse=True, position=position))


# --- Views --------------------------------------------------------------------------------------


class FollowUpListApi(GenericAPIView):
    """GET: the organization's follow-ups, highest priority first."""

    filterset_class = filters.FollowUpFilter
    pagination_class = FollowUpCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, outside any tenant
            return FollowUp.objects.none()
        return selectors.followups_of(self.request.auth.organization)

    @extend_schema(
        summary="List follow-ups",
        description="Highest priority first, then the earliest due, then by id; "
        "cursor-paginated (follow `next`, `page_size` up to 1,000). Filters combine with "
        "AND; a value that cannot be read answers 400. The activity log is on the detail.",
        responses={200: FollowUpOutputSerializer(many=True), **ERRORS},
        tags=["follow-ups"],
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(FollowUpOutputSerializer(page, many=True).data)


class FollowUpDetailApi(APIView):
    @extend_schema(
        summary="One follow-up, with its activity log",
        responses={200: FollowUpDetailOutputSerializer, **ERRORS, **NOT_FOUND},
        tags=["follow-ups"],
    )
    def get(self, request, pk: int):
        return Response(_detail(request.auth.organization, pk))

    @extend_schema(
        summary="Work a follow-up: status, assignee, outcome, a note",
        description="Every field is optional; what is sent is applied together, or nothing "
        'is (400). Closing is `{"status": "closed", "outcome": "resolved", '
        '"closing_notes": "…"}`: the outcome is required, and `outcome` and '
        "`closing_notes` are only taken with a close. `note` adds a note to the activity "
        "log. Any other field is refused: this endpoint never sends email and cannot turn "
        "on automatic sending.",
        request=FollowUpChangeSerializer,
        responses={200: FollowUpDetailOutputSerializer, **ERRORS, **NOT_FOUND},
        tags=["follow-ups"],
    )
    def patch(self, request, pk: int):
        organization = request.auth.organization
        followup = selectors.get_followup_for(organization, pk)
        changes = _valid_changes(request.data)
        _apply(organization, followup, changes)
        return Response(_detail(organization, pk))


def _detail(organization: Organization, pk: int) -> dict:
    """FollowUpDetailOutputSerializer's data (404 for another organization's id)."""
    followup = selectors.get_followup_for(organization, pk)
    followup.activities_list = selectors.activities_of(organization, followup)
    return _DETAIL.to_representation(followup)


def _valid_changes(body) -> dict:
    if not isinstance(body, dict):
        raise exceptions.ValidationError(
            "Send a JSON object with status, outcome, closing_notes, assignee and/or note."
        )
    unknown = sorted(set(body) - ALLOWED_FIELDS)
    if unknown:
        raise exceptions.ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
    serializer = FollowUpChangeSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    changes = dict(serializer.validated_data)
    closing = changes.get("status") == Status.CLOSED
    for name in ("outcome", "closing_notes"):
        if name in changes and not closing:
            raise exceptions.ValidationError(
                {name: [f'Send {name} with status "closed": it is only taken when closing.']}
            )
    return changes


def _apply(organization: Organization, followup: FollowUp, changes: dict) -> None:
    """Calls the one service per change, in one transaction: all or nothing."""
    with transaction.atomic():
        if "assignee" in changes:
            services.followup_assign(
                organization=organization,
                followup=followup,
                actor=None,
                assignee=_member(organization, changes["assignee"]),
            )
        if "note" in changes:
            services.followup_log(
                organization=organization,
                followup=followup,
                actor=None,
                kind=ActivityKind.NOTE,
                message=changes["note"],
            )
        status = changes.get("status")
        if status == Status.CLOSED:
            outcome = changes.get("outcome") or ""
            notes = changes.get("closing_notes", "")
            unchanged = (
                followup.status == Status.CLOSED
                and followup.outcome == outcome
                and followup.closing_notes == notes.strip()
            )
            if not unchanged:
                services.followup_close(
                    organization=organization,
                    followup=followup,
                    actor=None,
                    outcome=outcome,
                    notes=notes,
                )
        elif status is not None:
            services.followup_change_status(
                organization=organization, followup=followup, actor=None, status=status
            )


def _member(organization: Organization, email: str | None):
    if email is None:
        return None
    membership = (
        Membership.objects.filter(organization=organization, user__email__iexact=email.strip())
        .select_related("user")
        .first()
    )
    if membership is None:
        raise exceptions.ValidationError({"assignee": [NOT_A_MEMBER]})
    return membership.user

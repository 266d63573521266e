"""Query-string filters for the accounts API lists (django-filter).

A value that cannot be read (a word where a number goes, an unknown segment, a date that is
not a date) answers 400 with the field named; nothing here can raise past the form.
"""

import django_filters as filters
from django import forms
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field

from accounts import selectors
from accounts.models import (
    Account,
    Contact,
    LifecycleStage,
    Segment,
    SupportTicket,
    TicketPriority,
    TicketStatus,
    UsageSnapshot,
)

# Ids and counts are whole numbers within a signed 64-bit integer; anything else is a 400.
BIGINT_MAX = 2**63 - 1


class _StrictBooleanField(forms.Field):
    """true/false, 1/0 or yes/no; anything else is an error (not silently ignored)."""

    widget = forms.TextInput
    TRUE = {"true", "1", "yes"}
    FALSE = {"false", "0", "no"}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")

    def validate(self, value):
        pass  # None (not given) is fine: the filter is skipped.


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = _StrictBooleanField


class IntegerFilter(filters.NumberFilter):
    """A whole number (an id, a score): 1.5 or 1e99 are errors, not rounded."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(*args, **kwargs)


def _segments_of_request(request):
    if request is None or getattr(request, "auth", None) is None:
        return Segment.objects.none()
    return selectors.segments_of(request.auth.organization)


def _segment_filter():
    help_text = "A segment's id (GET /api/v1/segments/): only the rows it selects."
    return extend_schema_field({"type": "integer", "description": help_text})(
        filters.ModelChoiceFilter(
            queryset=_segments_of_request,
            method="filter_segment",
            help_text=help_text,
            error_messages={
                "invalid_choice": (
                    "No segment has this id in your organization; GET /api/v1/segments/ lists them."
                )
            },
        )
    )


def _account_id_filter():
    return extend_schema_field({"type": "integer", "description": "The account's id."})(
        IntegerFilter(field_name="account_id", help_text="The account's id.")
    )


def _account_external_id_filter():
    return filters.CharFilter(
        field_name="account__external_id", help_text="The account's external_id."
    )


def _updated_since_filter():
    return filters.IsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="Changed at or after this moment (ISO 8601).",
    )


class _TenantFilterSet(filters.FilterSet):
    @property
    def organization(self):
        return self.request.auth.organization


class AccountFilter(_TenantFilterSet):
    external_id = filters.CharFilter(help_text="Exact external_id.")
    plan = filters.CharFilter(lookup_expr="iexact", help_text="Plan, any case.")
    lifecycle_stage = filters.ChoiceFilter(choices=LifecycleStage.choices)
    owner = filters.CharFilter(
        field_name="owner__email", lookup_expr="iexact", help_text="The owning member's email."
    )
    arr_min = filters.NumberFilter(
        field_name="arr",
        lookup_expr="gte",
        max_digits=14,
        decimal_places=2,
        help_text="ARR ≥ this.",
    )
    arr_max = filters.NumberFilter(
        field_name="arr",
        lookup_expr="lte",
        max_digits=14,
        decimal_places=2,
        help_text="ARR ≤ this.",
    )
    health_min = IntegerFilter(
        field_name="health_score", lookup_expr="gte", help_text="Health score ≥ this (0–100)."
    )
    health_max = IntegerFilter(
        field_name="health_score", lookup_expr="lte", help_text="Health score ≤ this (0–100)."
    )
    updated_since = _updated_since_filter()
    segment = _segment_filter()
    q = filters.CharFilter(
        method="filter_q", help_text="Text in the name, domain or external_id (any case)."
    )

    class Meta:
        model = Account
        fields = []

    def filter_segment(self, queryset, name, segment):
        return queryset & selectors.accounts_in_segment(self.organization, segment)

    def filter_q(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value) | Q(domain__icontains=value) | Q(external_id__icontains=value)
        )


class ContactFilter(_TenantFilterSet):
    email = filters.CharFilter(lookup_expr="iexact", help_text="Exact email, any case.")
    external_id = filters.CharFilter(help_text="Exact external_id.")
    account = _account_id_filter()
    account_external_id = _account_external_id_filter()
    suppressed = StrictBooleanFilter(
        method="filter_suppressed",
        help_text="true: only contacts who must not be surveyed; false: only the others.",
    )
    updated_since = _updated_since_filter()
    segment = _segment_filter()

    class Meta:
        model = Contact
        fields = []

    def filter_segment(self, queryset, name, segment):
        return queryset & selectors.contacts_in_segment(self.organization, segment)

    def filter_suppressed(self, queryset, name, value):
        if value is None:
            return queryset
        if value:
            return queryset.exclude(suppressed_reason="")
        return queryset.filter(suppressed_reason="")


class TicketFilter(_TenantFilterSet):
    account = _account_id_filter()
    account_external_id = _account_external_id_filter()
    status = filters.ChoiceFilter(choices=TicketStatus.choices)
    priority = filters.ChoiceFilter(choices=TicketPriority.choices)
    opened_since = filters.IsoDateTimeFilter(
        field_name="opened_at", lookup_expr="gte", help_text="Opened at or after (ISO 8601)."
    )
    opened_before = filters.IsoDateTimeFilter(
        field_name="opened_at", lookup_expr="lt", help_text="Opened before (ISO 8601)."
    )

    class Meta:
        model = SupportTicket
        fields = []


class UsageFilter(_TenantFilterSet):
    account = _account_id_filter()
    account_external_id = _account_external_id_filter()
    date_from = filters.DateFilter(
        field_name="date", lookup_expr="gte", help_text="On or after this day (YYYY-MM-DD)."
    )
    date_to = filters.DateFilter(
        field_name="date", lookup_expr="lte", help_text="On or before this day (YYYY-MM-DD)."
    )

    class Meta:
        model = UsageSnapshot
        fields = []

"""Query-string filters for the responses API list (django-filter).

A value that cannot be read (a word where a number goes, an unknown segment or category, a
date that is not a date) answers 400 with the field named; nothing here raises past the form.
"""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import django_filters as filters
from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field

from accounts import selectors as account_selectors
from accounts.filters import IntegerFilter, StrictBooleanFilter
from accounts.models import Segment
from responses.models import Category, Channel, Response


class _MomentField(forms.Field):
    """An ISO 8601 date-time (with an offset, or read in the organization's timezone), or a
    date (YYYY-MM-DD): the filter reads a date as that day's midnight, organization time."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        try:
            moment = parse_datetime(text) or parse_date(text)
        except ValueError:
            moment = None
        if moment is None:
            raise forms.ValidationError(
                "Use an ISO 8601 date (2026-01-31) or date-time (2026-01-31T09:00:00Z).",
                code="invalid",
            )
        return moment


class MomentFilter(filters.Filter):
    field_class = _MomentField

    def filter(self, qs, value):
        if value is None:
            return qs
        return super().filter(qs, self.parent.as_moment(value))


class _SlugFilter(filters.CharFilter):
    field_class = forms.SlugField


def _segments_of_request(request):
    if request is None or getattr(request, "auth", None) is None:
        return Segment.objects.none()
    return account_selectors.segments_of(request.auth.organization)


_SEGMENT_HELP = "A segment's id (GET /api/v1/segments/): only responses from its accounts."
_SCORE_BOUNDS = {"min_value": 0, "max_value": 10}


class ResponseFilter(filters.FilterSet):
    submitted_after = extend_schema_field({"type": "string", "format": "date-time"})(
        MomentFilter(
            field_name="submitted_at",
            lookup_expr="gte",
            help_text="Submitted at or after this moment (ISO 8601 date-time, or a date: "
            "from its start, in the organization's timezone).",
        )
    )
    submitted_before = extend_schema_field({"type": "string", "format": "date-time"})(
        MomentFilter(
            field_name="submitted_at",
            lookup_expr="lt",
            help_text="Submitted before this moment (ISO 8601 date-time, or a date: before "
            "its start, in the organization's timezone).",
        )
    )
    category = filters.ChoiceFilter(choices=Category.choices)
    score = IntegerFilter(help_text="Exactly this score (0–10).", **_SCORE_BOUNDS)
    score_min = IntegerFilter(
        field_name="score", lookup_expr="gte", help_text="Score ≥ this.", **_SCORE_BOUNDS
    )
    score_max = IntegerFilter(
        field_name="score", lookup_expr="lte", help_text="Score ≤ this.", **_SCORE_BOUNDS
    )
    segment = extend_schema_field({"type": "integer", "description": _SEGMENT_HELP})(
        filters.ModelChoiceFilter(
            queryset=_segments_of_request,
            method="filter_segment",
            help_text=_SEGMENT_HELP,
            error_messages={
                "invalid_choice": (
                    "No segment has this id in your organization; GET /api/v1/segments/ lists them."
                )
            },
        )
    )
    account = extend_schema_field({"type": "integer", "description": "The account's id."})(
        IntegerFilter(field_name="account_id", help_text="The account's id.")
    )
    account_external_id = filters.CharFilter(
        field_name="account__external_id", help_text="The account's external_id."
    )
    theme = _SlugFilter(
        field_name="theme_rows__theme",
        max_length=50,
        help_text="A theme's slug (e.g. pricing): responses whose comment is about it.",
    )
    has_comment = StrictBooleanFilter(help_text="true: only responses with a comment.")
    channel = filters.ChoiceFilter(choices=Channel.choices)
    email = filters.CharFilter(method="filter_email", help_text="The contact's email (any case).")

    class Meta:
        model = Response
        fields = []

    @property
    def organization(self):
        return self.request.auth.organization

    def as_moment(self, value: date | datetime) -> datetime:
        """An aware datetime: a date is its midnight, a naive time is read, in the
        organization's timezone."""
        if not isinstance(value, datetime):
            value = datetime.combine(value, time.min)
        if timezone.is_naive(value):
            value = timezone.make_aware(value, ZoneInfo(self.organization.timezone))
        return value

    def filter_segment(self, queryset, name, segment):
        accounts = account_selectors.accounts_in_segment(self.organization, segment)
        return queryset.filter(account_id__in=accounts.values("pk"))

    def filter_email(self, queryset, name, value):
        # Contact emails are stored lower-cased (accounts.cleaning.email): an exact,
        # indexable comparison.
        return queryset.filter(contact__email=value.strip().lower())
